"""The TFDS builder that prepares any ImageSource into ArrayRecord files, without TensorFlow.

`prepare_images(path)` decodes a raw image dataset once into
`<cache dir>/tfds/<stem>-<fingerprint>/modzoo_images/1.0.0/` and returns a
TFDS builder for it; `builder.as_data_source()[split]` is then a random-access
source that grain reads. A prepared copy is reused as it is (the source is not
even opened). The builder is left out of the TFDS registry (one class serves
many sources); open a prepared copy from anywhere with
`tfds.builder_from_directory(<that folder>)`.

Images are stored as raw uint8 HWC bytes (no re-encoding, nothing to decode on
read); labels as a ClassLabel carrying the class names. Records keep the
source's order (train/test folders sorted by class then file name; CIFAR-10
batches in file order).
"""
from __future__ import annotations

import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from data.image_sources import ImageSource, fingerprint, open_image_source
from data.paths import resolve_cache_dir


class ModzooImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A labelled image dataset (train/test) prepared from an ImageSource into ArrayRecord."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Raw uint8 images and class labels from an ImageSource."}

    def __init__(self, *, source: ImageSource, **kwargs):
        self._source = source
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"Images from {self._source.path} ({self._source.kind}).",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(
                    shape=self._source.image_shape, dtype=np.uint8, encoding=tfds.features.Encoding.BYTES
                ),
                "label": tfds.features.ClassLabel(names=list(self._source.class_names)),
            }),
            supervised_keys=("image", "label"),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in self._source.splits}

    def _generate_examples(self, split: str):
        for i, (image, label) in enumerate(self._source.examples(split)):
            yield i, {"image": image, "label": label}


def prepared_dir(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The folder a prepared copy of the image dataset at `path` lives in (it may not exist yet)."""
    path = pathlib.Path(path).expanduser().resolve()
    stem = path.name.split(".")[0] or "images"
    root = resolve_cache_dir(cache_dir) / "tfds" / f"{stem}-{fingerprint(path)}"
    return root / ModzooImages.name / str(ModzooImages.VERSION)


def prepare_images(
    path: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
) -> tfds.core.DatasetBuilder:
    """Prepare (once) the image dataset at `path` into ArrayRecord in the cache folder; return its builder."""
    target = prepared_dir(path, cache_dir)
    if (target / "dataset_info.json").is_file():
        return tfds.builder_from_directory(target)
    source = open_image_source(path)
    root = target.parents[1]
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PermissionError(
            f"cannot write prepared data to {root} ({e}): set $MODZOO_CACHE_DIR or cache_dir= to a writable folder"
        ) from e
    builder = ModzooImages(source=source, data_dir=root, file_format="array_record")
    builder.download_and_prepare()
    return builder
