"""The TFDS builders that prepare modzoo's datasets into ArrayRecord files, without TensorFlow.

`prepare_images(path)` decodes a raw image dataset once, and
`prepare_text(path, splits)` copies byte ranges of a text file once, into
`<cache dir>/tfds/<stem>-<fingerprint>/<builder name>/1.0.0/` (builder names
modzoo_images and modzoo_text); each returns a TFDS builder, and
`builder.as_data_source()[split]` is then a random-access source that grain
reads. A prepared copy is reused as it is (the source is not even opened).
For a catalogue file, `<stem>-<fingerprint>/source.json` beside the copy
records the checksum the source was verified with (data.paths.fetch).

Writes are atomic: TFDS writes the whole copy into a temporary
`incomplete.*` folder beside the target and renames it into place at the end,
so a copy is either complete or absent (an interrupted run leaves only that
temporary folder, and the next call prepares again). When several processes
prepare the same copy at once, the ones that lose the rename use the winner's.

The builders are left out of the TFDS registry (one class serves many
sources); open a prepared copy from anywhere with
`tfds.builder_from_directory(<that folder>)`.

Images are stored as raw uint8 HWC bytes (no re-encoding, nothing to decode on
read); labels as a ClassLabel carrying the class names. Records keep the
source's order (train/test folders sorted by class then file name; CIFAR-10
batches in file order).

Text is stored as the file's bytes, unchanged, in consecutive records of
TEXT_CHUNK bytes (the last of each split shorter) in a bytes feature "text";
joining a split's records in order gives back its byte range exactly.

`open_prepared("tfds:<name>", data_dir)` opens any TFDS dataset already
prepared under a TFDS data folder (the "tfds:" names of image_dataset and
text_dataset).
"""
from __future__ import annotations

import os
import pathlib
from collections.abc import Callable

import numpy as np
import tensorflow_datasets as tfds

from data.image_sources import ImageSource, open_image_source
from data.paths import prepared_root

TFDS_PREFIX = "tfds:"
TEXT_CHUNK = 64 * 1024


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


class ModzooText(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Byte ranges of a file, one split each, stored unchanged as ordered TEXT_CHUNK-byte records."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "A file's bytes in ordered 64 KiB records, one byte range per split."}

    def __init__(self, *, path: pathlib.Path, splits: dict[str, tuple[int, int]], **kwargs):
        self._path = path
        self._splits = splits
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        ranges = ", ".join(f"{s} = bytes [{a}, {b})" for s, (a, b) in self._splits.items())
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"The bytes of {self._path} in records of {TEXT_CHUNK} bytes: {ranges}.",
            features=tfds.features.FeaturesDict({"text": tfds.features.Tensor(shape=(), dtype=np.object_)}),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(start, stop) for split, (start, stop) in self._splits.items()}

    def _generate_examples(self, start: int, stop: int):
        with open(self._path, "rb") as f:
            f.seek(start)
            for i, offset in enumerate(range(start, stop, TEXT_CHUNK)):
                chunk = f.read(min(TEXT_CHUNK, stop - offset))
                if len(chunk) < min(TEXT_CHUNK, stop - offset):
                    raise ValueError(f"{self._path} got shorter while it was being prepared: prepare it again")
                yield i, {"text": chunk}


def prepared_dir(
    path: str | os.PathLike,
    builder: type[tfds.core.DatasetBuilder],
    cache_dir: str | os.PathLike | None = None,
) -> pathlib.Path:
    """The folder a prepared copy of the data at `path`, made by `builder`, lives in (it may not exist yet)."""
    return prepared_root(path, cache_dir) / builder.name / str(builder.VERSION)


def _prepare(
    path: str | os.PathLike,
    builder_class: type[tfds.core.DatasetBuilder],
    cache_dir: str | os.PathLike | None,
    make_kwargs: Callable[[], dict],
) -> tfds.core.DatasetBuilder:
    """Builder of the prepared copy of `path`, preparing it first (builder_class(**make_kwargs())) if missing."""
    target = prepared_dir(path, builder_class, cache_dir)
    if (target / "dataset_info.json").is_file():
        return tfds.builder_from_directory(target)
    kwargs = make_kwargs()
    root = target.parents[1]
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PermissionError(
            f"cannot write prepared data to {root} ({e}): set $MODZOO_CACHE_DIR or cache_dir= to a writable folder"
        ) from e
    builder = builder_class(data_dir=root, file_format="array_record", **kwargs)
    try:
        builder.download_and_prepare()
    except OSError:
        if not (target / "dataset_info.json").is_file():
            raise
        return tfds.builder_from_directory(target)  # another process prepared it first and won the rename
    return builder


def prepare_images(
    path: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
) -> tfds.core.DatasetBuilder:
    """Prepare (once) the image dataset at `path` into ArrayRecord in the cache folder; return its builder."""
    return _prepare(path, ModzooImages, cache_dir, lambda: {"source": open_image_source(path)})


def prepare_text(
    path: str | os.PathLike,
    splits: dict[str, tuple[int, int]],
    *,
    cache_dir: str | os.PathLike | None = None,
) -> tfds.core.DatasetBuilder:
    """Prepare (once) the byte ranges `splits` ({split: (start, stop)}) of the file at `path`; return the builder.

    The copy is keyed by the file alone: callers must always pass the same
    ranges for a file (text.py's split rule does).
    """
    path = pathlib.Path(path).expanduser().resolve()
    return _prepare(path, ModzooText, cache_dir, lambda: {"path": path, "splits": splits})


def open_prepared(name: str, data_dir: str | os.PathLike | None = None) -> tfds.core.DatasetBuilder:
    """The builder of "tfds:<name>", a TFDS dataset already prepared (in ArrayRecord) under the TFDS folder data_dir."""
    tfds_name = name[len(TFDS_PREFIX):]
    builder = tfds.builder(tfds_name, data_dir=data_dir)
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"TFDS dataset {tfds_name!r} is not prepared under {builder.data_dir}: prepare it in ArrayRecord"
            " format first, or pass data_dir= the TFDS folder that holds it"
        )
    return builder
