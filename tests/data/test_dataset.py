"""pipeline.data.dataset: both ImageNet val layouts, custom folders, and the error lines."""

import logging

import pytest

from pipeline.data.dataset import ImageFolderDataset, read_label_list
from pipeline.errors import UserError
from tests.support.synthetic import write_synthetic_imagenet

from .conftest import solid_jpeg

VAL1, VAL2 = "ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00015416.JPEG"  # ground truth 65, 13


def _labels(ds):
    return {s.path.name: s.label for s in ds}


def test_flat_official_val_names_get_ground_truth_without_a_list(tmp_path):
    for n in (VAL1, VAL2):
        solid_jpeg(tmp_path / n)
    ds = ImageFolderDataset.from_dir(tmp_path)
    assert ds.layout == "val" and ds.labelled and ds.num_classes == 1000
    assert _labels(ds) == {VAL1: 65, VAL2: 13}


def test_label_list_relative_to_data_dir(tmp_path):
    for n in ("a.jpg", "b b.jpg"):  # a name with a space: the label is the last field
        solid_jpeg(tmp_path / "imgs" / n)
    lst = tmp_path / "labels.txt"
    lst.write_text("# comment\n\na.jpg 3\nb b.jpg 7\n")
    ds = ImageFolderDataset.from_dir(tmp_path / "imgs", labels=lst)
    assert ds.layout == "list" and _labels(ds) == {"a.jpg": 3, "b b.jpg": 7}


def test_label_list_with_subfolder_prefix_resolves_from_root_or_from_the_subfolder(tmp_path):
    for n in (VAL1, VAL2):
        solid_jpeg(tmp_path / "ILSVRC2012" / "val" / n)
    lst = tmp_path / "val_list.txt"
    lst.write_text(f"val/{VAL1} 65\nval/{VAL2} 13\n")  # PaddleClas' own format
    for root in (tmp_path / "ILSVRC2012", tmp_path / "ILSVRC2012" / "val"):
        ds = ImageFolderDataset.from_dir(root, labels=lst)
        assert _labels(ds) == {VAL1: 65, VAL2: 13}
        assert all(s.path.exists() for s in ds)


def test_label_list_that_contradicts_ground_truth_warns(tmp_path, caplog):
    solid_jpeg(tmp_path / VAL1)
    (tmp_path / "l.txt").write_text(f"{VAL1} 3\n")
    with caplog.at_level(logging.WARNING):
        ds = ImageFolderDataset.from_dir(tmp_path, labels=tmp_path / "l.txt")
    assert _labels(ds) == {VAL1: 3}  # the list wins, but the user is told
    assert "disagrees with the ImageNet ground truth for 1 of 1" in caplog.text


def test_synset_folders_map_to_imagenet_indices_even_for_a_subset(tmp_path):
    solid_jpeg(tmp_path / "n01440764" / "x.JPEG")
    solid_jpeg(tmp_path / "n15075141" / "deep" / "y.png")  # nested files count
    ds = ImageFolderDataset.from_dir(tmp_path)
    assert ds.layout == "synset" and ds.num_classes == 1000
    assert _labels(ds) == {"x.JPEG": 0, "y.png": 999}


def test_custom_folders_use_sorted_names_and_say_so(tmp_path, caplog):
    for cls in ("dogs", "cats", "birds"):
        solid_jpeg(tmp_path / cls / f"{cls}.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    # the logger's own level too: a session fixture (xxs1) leaves `pipeline` at WARNING
    with caplog.at_level(logging.INFO, logger="pipeline"):
        ds = ImageFolderDataset.from_dir(tmp_path)
    assert ds.layout == "folders" and ds.class_names == ("birds", "cats", "dogs")
    assert _labels(ds) == {"birds.jpg": 0, "cats.jpg": 1, "dogs.jpg": 2}
    assert "not ImageNet synsets" in caplog.text


def test_numeric_folder_names_keep_text_order_with_a_warning(tmp_path, caplog):
    for cls in ("2", "10"):
        solid_jpeg(tmp_path / cls / "x.jpg")
    with caplog.at_level(logging.WARNING):
        ds = ImageFolderDataset.from_dir(tmp_path)
    assert {s.path.parent.name: s.label for s in ds} == {"10": 0, "2": 1}
    assert "text* order" in caplog.text


def test_unlabelled_flat_folder(tmp_path):
    for n in ("b.jpg", "a.png", ".hidden.jpg"):
        solid_jpeg(tmp_path / n)
    ds = ImageFolderDataset.from_dir(tmp_path)
    assert ds.layout == "unlabelled" and not ds.labelled and ds.num_classes is None
    assert [s.path.name for s in ds] == ["a.png", "b.jpg"]
    assert all(s.label is None for s in ds)


@pytest.mark.parametrize("layout", ["flat", "synset"])
def test_synthetic_layouts_and_written_list_agree_on_labels(tmp_path, layout):
    written = write_synthetic_imagenet(
        tmp_path / layout, 30, size=32, layout=layout, write_list=True
    )
    by_dir = ImageFolderDataset.from_dir(tmp_path / layout)
    by_list = ImageFolderDataset.from_dir(
        tmp_path / layout, labels=tmp_path / layout / "val_list.txt"
    )
    assert _labels(by_dir) == _labels(by_list) == {s.path.name: s.label for s in written}
    assert sorted(set(_labels(by_dir).values())) == list(range(10))
    assert len(by_dir) == 30


# ---- errors: one clear line each --------------------------------------------------------------


def _error(root, labels=None):
    with pytest.raises(UserError) as info:
        ImageFolderDataset.from_dir(root, labels=labels)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_missing_directory(tmp_path):
    assert "does not exist" in _error(tmp_path / "nope")


def test_file_instead_of_directory(tmp_path):
    assert "is not a directory" in _error(solid_jpeg(tmp_path / "a.jpg"))


def test_empty_directory(tmp_path):
    (tmp_path / "emptyclass").mkdir()
    assert "no images in" in _error(tmp_path)


def test_listed_images_that_do_not_exist_are_counted_and_the_first_named(tmp_path):
    solid_jpeg(tmp_path / "a.jpg")
    (tmp_path / "l.txt").write_text("a.jpg 0\nmissing1.jpg 1\nmissing2.jpg 1\n")
    msg = _error(tmp_path, tmp_path / "l.txt")
    assert "2 of 3 images listed" in msg and "first: missing1.jpg" in msg


def test_images_without_a_label_are_counted_and_the_first_named(tmp_path):
    for n in ("a.jpg", "b.jpg", "c.jpg"):
        solid_jpeg(tmp_path / n)
    (tmp_path / "l.txt").write_text("a.jpg 0\n")
    msg = _error(tmp_path, tmp_path / "l.txt")
    assert "2 images in" in msg and "have no label" in msg and "first: b.jpg" in msg


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"a.jpg\n", "l.txt:1: expected '<image path> <class index>'"),
        (b"a.jpg zero\n", "l.txt:1: expected"),
        (b"\n# only comments\n", "lists no images"),
        (b"a.jpg 1\na.jpg 1\n", "l.txt:2: a.jpg is listed twice"),
        (b"\xff\xfe\x00binary", "is not UTF-8 text"),
    ],
)
def test_unreadable_or_malformed_labels_file(tmp_path, content, expected):
    solid_jpeg(tmp_path / "d" / "a.jpg")
    (tmp_path / "l.txt").write_bytes(content)
    assert expected in _error(tmp_path / "d", tmp_path / "l.txt")


def test_labels_file_missing(tmp_path):
    solid_jpeg(tmp_path / "a.jpg")
    assert "labels file" in _error(tmp_path, tmp_path / "none.txt")
    assert "does not exist" in _error(tmp_path, tmp_path / "none.txt")


def test_mix_of_synset_and_other_folders_is_refused(tmp_path):
    solid_jpeg(tmp_path / "n01440764" / "a.jpg")
    solid_jpeg(tmp_path / "extra" / "b.jpg")
    msg = _error(tmp_path)
    assert "1 class folders are ImageNet synsets but 1 are not (first: extra)" in msg


def test_read_label_list_parses_paths_and_indices(tmp_path):
    (tmp_path / "l.txt").write_text("val/x.JPEG 65\n./y.png 0\n")
    assert read_label_list(tmp_path / "l.txt") == [("val/x.JPEG", 65), ("y.png", 0)]
