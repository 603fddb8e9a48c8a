"""Real image files of every kind the loaders must handle, written into tmp_path."""

import numpy as np
import pytest
from PIL import Image


def write_kinds(folder):
    """One file per kind: {kind: path}. Colours are chosen so a test can tell what happened."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = {}
    paths["rgb_jpeg"] = folder / "rgb.jpg"
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(paths["rgb_jpeg"])
    paths["gray_jpeg"] = folder / "gray.jpg"
    Image.new("L", (40, 30), 90).save(paths["gray_jpeg"])
    paths["cmyk_jpeg"] = folder / "cmyk.jpg"
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(paths["cmyk_jpeg"], quality=95)  # red
    paths["rgba_png"] = folder / "alpha.png"
    Image.new("RGBA", (40, 30), (10, 20, 30, 0)).save(paths["rgba_png"])  # fully transparent
    paths["palette_png"] = folder / "palette.png"
    pal = Image.new("P", (40, 30), 1)
    pal.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    pal.save(paths["palette_png"])
    paths["gray16_png"] = folder / "gray16.png"
    Image.fromarray(np.full((30, 40), 65535, dtype=np.uint16)).save(paths["gray16_png"])
    paths["corrupt"] = folder / "corrupt.jpg"
    paths["corrupt"].write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" + bytes(64))
    full = folder / "full.jpg"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(full)
    paths["truncated"] = folder / "truncated.jpg"
    paths["truncated"].write_bytes(full.read_bytes()[:400])
    full.unlink()
    return paths


@pytest.fixture
def image_kinds(tmp_path):
    return write_kinds(tmp_path / "kinds")


def solid_jpeg(path, colour=(120, 60, 30), size=(24, 20)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path
