"""One image preprocessing path, shared by the Paddle reference, calibration, evaluation, parity.

It reproduces CaiT's evaluation transform as PaddleViT and timm run it (PIL backend):
`Resize(int(size / crop_pct), bicubic)` on the short side → `CenterCrop(size)` → `/255` →
ImageNet mean/std. Rounding follows paddle.vision / torchvision exactly (long side truncated with
`int()`, crop offsets `round()`ed), so the same image gives the same tensor in every stage.
If two stages disagree, parity measures the model, never a preprocessing mismatch.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# float32, and a division rather than a multiply by 1/std: bit-identical to paddle.vision Normalize.
_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32).reshape(3, 1, 1)
_STD = np.asarray(IMAGENET_STD, dtype=np.float32).reshape(3, 1, 1)


class CorruptImageError(UserError):
    """An image file that cannot be decoded. A UserError, so a single bad `infer` input reads as one
    line; dataset loops catch it, skip the file and count it."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")


def load_image(path: str | os.PathLike) -> Image.Image:
    """Decode `path` fully into an RGB image.

    Mode handling: grayscale (L, 1) is replicated to three channels; CMYK uses PIL's conversion
    (Adobe-inverted JPEGs are handled by the decoder); palette images are expanded. **Alpha is
    dropped, not composited** (RGBA/LA/PA/palette-with-transparency keep their colour channels as
    stored) because that is what PaddleClas, PaddleViT and timm do (`convert("RGB")` / cv2), so
    published accuracies stay comparable. 16-bit grayscale is scaled to 8 bits. EXIF orientation is
    ignored, as in those references.
    """
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file must fail here, not later in a worker
            return _to_rgb(img)
    except FileNotFoundError:
        raise CorruptImageError(path, "file not found") from None
    except (UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise CorruptImageError(path, str(e) or type(e).__name__) from None
    except (OSError, SyntaxError, ValueError) as e:  # PIL reports truncation/bad headers this way
        raise CorruptImageError(path, str(e) or type(e).__name__) from None


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img.copy()
    if img.mode.startswith("I"):  # 16/32-bit integer grayscale (e.g. 16-bit PNG)
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        a = np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8)
        img = Image.fromarray(a, mode="L")
    elif img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        scale = 255.0 if a.max(initial=0) <= 1.0 else 1.0  # float images: [0, 1] or [0, 255]
        img = Image.fromarray(np.clip(np.rint(a * scale), 0, 255).astype(np.uint8), mode="L")
    elif img.mode == "P":
        img = img.convert("RGBA")  # expand the palette first; its alpha is then dropped below
    return img.convert("RGB")


def resize_short_crop(img: Image.Image, size: int, crop_pct: float = 1.0) -> Image.Image:
    """Bicubic resize of the short side to `int(size / crop_pct)`, then a centred `size`² crop."""
    if not 0 < crop_pct <= 1:
        raise UserError(f"crop_pct must be in (0, 1], got {crop_pct}")
    short = int(size / crop_pct)
    w, h = img.size
    # paddle.vision.transforms.resize: no-op when the short side already matches.
    if not ((w <= h and w == short) or (h <= w and h == short)):
        if w < h:
            w, h = short, int(short * h / w)
        else:
            w, h = int(short * w / h), short
        img = img.resize((w, h), Image.BICUBIC)
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def preprocess(img: Image.Image, size: int, crop_pct: float = 1.0) -> np.ndarray:
    """RGB PIL image → float32 (3, size, size): CaiT's evaluation transform (see module doc)."""
    if img.mode != "RGB":
        img = _to_rgb(img)
    x = np.asarray(resize_short_crop(img, size, crop_pct), dtype=np.float32)  # (S, S, 3)
    x = x.transpose(2, 0, 1) / np.float32(255.0)
    return np.ascontiguousarray((x - _MEAN) / _STD, dtype=np.float32)
