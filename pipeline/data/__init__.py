"""Images in, float32 batches out: datasets on disk, sampling, and the one shared preprocessing.

ds = ImageFolderDataset.from_dir("val/", labels="val_list.txt")    # or a synset tree
calib, parity = split_calib_parity(ds.samples, 500, 200, seed=0)
stream = iter_batches(calib, size=224, batch_size=32)
for batch in stream: ...                                          # batch.images (b,3,224,224)
stream.skipped                                                    # corrupt files met
"""

from pipeline.data.batches import Batch, BatchStream, iter_batches
from pipeline.data.dataset import IMAGE_EXTENSIONS, ImageFolderDataset, Sample, read_label_list
from pipeline.data.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CorruptImageError,
    load_image,
    preprocess,
)
from pipeline.data.sampling import (
    CalibParitySplit,
    class_balanced_sample,
    manifest_hash,
    split_calib_parity,
)

__all__ = [
    "Batch",
    "BatchStream",
    "CalibParitySplit",
    "CorruptImageError",
    "IMAGE_EXTENSIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageFolderDataset",
    "Sample",
    "class_balanced_sample",
    "iter_batches",
    "load_image",
    "manifest_hash",
    "preprocess",
    "read_label_list",
    "split_calib_parity",
]
