"""Labelled image datasets read from random-access sources (prepared ArrayRecord, or any TFDS dataset).

`image_dataset(name_or_path, split)` accepts:
* "cifar10": looked up in the data folder as the canonical
  cifar-10-python.tar.gz, else cifar10-jpg.tar.gz (the JPEG image-folder copy),
  else a cifar10-images-jpg/ folder; when none is there the canonical tarball is
  downloaded. Either tarball is checked against its catalogue checksum on first
  use (data.paths.fetch); the extracted folder is not. Normalized with the
  canonical CIFAR-10 constants (augment.CIFAR10_MEAN/STD).
* a path to an image-folder tree, a tar(.gz) of one, or a CIFAR-10 python
  tarball: prepared once into the cache folder. Normalized with mean/std
  computed over its train split (stored beside the prepared copy).
* "tfds:<name>": a TFDS dataset already prepared in ArrayRecord under
  `data_dir` (its TFDS data folder), read with tfds.data_source, without
  TensorFlow. Normalized with mean/std computed over its "train" split unless
  given (pass them for big datasets: the pass reads every train image).
Images must all have one size; features are "image" (uint8 HWC) and "label".

Training batches: {"image": float32 [B, H, W, 3], "label": int32 [B]}, from a
seeded shuffle that changes every epoch, with random 4-pixel-padded crops and
horizontal flips drawn per global batch (seeded by step), each image taking
those of its row there, so any number of hosts sees the same augmented global
batch. Evaluation batches add "mask": float32 [B] (0 on padding rows) and are
ordered and unaugmented.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import grain
import numpy as np

from data.atomic import write_bytes
from data.augment import CIFAR10_MEAN, CIFAR10_STD, normalize, random_crop_flip
from data.paths import CIFAR10_JPG, CIFAR10_PYTHON, fetch, resolve_data_dir
from data.tfds_builder import TFDS_PREFIX, open_prepared, prepare_images

_CIFAR10_FILES = (CIFAR10_PYTHON, CIFAR10_JPG)  # looked up in this order, then the extracted folder
_CIFAR10_FOLDER = "cifar10-images-jpg"
_STATS_FILE = "channel_stats.json"
_STATS_BATCH = 1000


def _read(source, ids) -> tuple[np.ndarray, np.ndarray]:
    ids = [int(i) for i in ids]
    records = source.__getitems__(ids) if hasattr(source, "__getitems__") else [source[i] for i in ids]
    images = np.stack([np.asarray(r["image"], np.uint8) for r in records])
    labels = np.asarray([r["label"] for r in records], np.int32)
    return images, labels


def channel_stats(source) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of all pixels of `source`, scaled to [0, 1] (float64 sums)."""
    total = np.zeros(3)
    squares = np.zeros(3)
    count = 0
    for start in range(0, len(source), _STATS_BATCH):
        images, _ = _read(source, range(start, min(start + _STATS_BATCH, len(source))))
        pixels = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255
        total += pixels.sum(0)
        squares += (pixels**2).sum(0)
        count += len(pixels)
    mean = total / count
    return tuple(mean.tolist()), tuple(np.sqrt(squares / count - mean**2).tolist())


@dataclasses.dataclass(frozen=True, eq=False)
class ImageDataset:
    """One split of a labelled image dataset with its normalization and augmentation settings."""

    source: object  # random access: len(), [i] -> {"image": uint8 HWC, "label": int}
    name: str
    split: str
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool = True

    @property
    def num_classes(self) -> int:
        """Number of classes (labels are 0 .. num_classes - 1)."""
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.source)

    def train_batches(self, batch_size: int, seed: int, shard_index: int, shard_count: int) -> grain.MapDataset:
        """Endless per-host batches {"image", "label"} from a per-epoch shuffle of the whole split.

        All hosts shuffle the same way; host k takes positions k, k + count, ...
        so together they read each epoch exactly once, and the global batch,
        augmentation included, does not depend on how many hosts there are.
        """
        ids = grain.MapDataset.range(len(self.source)).shuffle(seed=seed).repeat(None)
        batches = ids[shard_index::shard_count].batch(batch_size, drop_remainder=True)

        def load(step: int, batch_ids) -> dict[str, np.ndarray]:
            images, labels = _read(self.source, batch_ids)
            if self.augment:
                rng = np.random.default_rng((seed, step))  # the global batch's draws; this host takes its rows'
                images = random_crop_flip(images, rng, shard=(shard_index, shard_count))
            return {"image": normalize(images, self.mean, self.std), "label": labels}

        return batches.map_with_index(load)

    def eval_batches(self, batch_size: int, shard_index: int, shard_count: int) -> grain.MapDataset:
        """Ordered, unaugmented per-host batches {"image", "label", "mask"}; padding rows have mask 0.

        Host k takes examples k, k + count, ...; every host gets the same number
        of batches, so hosts stay in step.
        """
        total = len(self.source)
        per_host = -(-total // (shard_count * batch_size)) * batch_size
        ids = grain.MapDataset.range(per_host * shard_count)[shard_index::shard_count]
        return ids.batch(batch_size).map(lambda j: self._eval_batch(np.asarray(j), total))

    def _eval_batch(self, ids: np.ndarray, total: int) -> dict[str, np.ndarray]:
        valid = ids < total
        images, labels = _read(self.source, np.where(valid, ids, 0))
        images[~valid] = 0
        labels[~valid] = 0
        return {
            "image": normalize(images, self.mean, self.std),
            "label": labels,
            "mask": valid.astype(np.float32),
        }


def _cifar10_path(data_dir, cache_dir) -> pathlib.Path:
    """The first CIFAR-10 copy in the data folder (tarballs checksum-verified), else the downloaded canonical one."""
    folder = resolve_data_dir(data_dir)
    for remote in _CIFAR10_FILES:
        if (folder / remote.filename).is_file():
            return fetch(remote, data_dir, cache_dir=cache_dir)
    if (folder / _CIFAR10_FOLDER).is_dir():
        return folder / _CIFAR10_FOLDER
    return fetch(CIFAR10_PYTHON, data_dir, cache_dir=cache_dir)


def _pick_split(available, split: str, name: str) -> str:
    if split not in available:
        raise ValueError(f"unknown split {split!r} for {name}: available {', '.join(sorted(available))}")
    return split


def _prepared_stats(builder) -> tuple[tuple[float, ...], tuple[float, ...]]:
    path = pathlib.Path(builder.data_dir) / _STATS_FILE
    if not path.is_file():
        mean, std = channel_stats(builder.as_data_source(split="train"))
        write_bytes(path, json.dumps({"mean": mean, "std": std}).encode())
    stats = json.loads(path.read_text())
    return tuple(stats["mean"]), tuple(stats["std"])


def image_dataset(
    name_or_path: str | os.PathLike,
    split: str,
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    augment: bool = True,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
) -> ImageDataset:
    """A split ("train"/"test", or a TFDS split) of an image dataset; see the module docstring for names.

    augment: random crops and flips in train_batches (evaluation never augments).
    mean, std: per-channel normalization (pixels in [0, 1]); defaults as documented above.
    """
    name = str(name_or_path)
    if name.startswith(TFDS_PREFIX):
        builder = open_prepared(name, data_dir)
        sources = builder.as_data_source()
        source = sources[_pick_split(sources, split, name)]
        if mean is None or std is None:
            mean, std = channel_stats(sources["train"])
        class_names = tuple(builder.info.features["label"].names)
        return ImageDataset(source, name, split, class_names, tuple(mean), tuple(std), augment)
    is_cifar = name == "cifar10"
    builder = prepare_images(_cifar10_path(data_dir, cache_dir) if is_cifar else name_or_path, cache_dir=cache_dir)
    sources = builder.as_data_source()
    source = sources[_pick_split(sources, split, name)]
    if mean is None or std is None:
        mean, std = (CIFAR10_MEAN, CIFAR10_STD) if is_cifar else _prepared_stats(builder)
    class_names = tuple(builder.info.features["label"].names)
    return ImageDataset(source, name, split, class_names, tuple(mean), tuple(std), augment)
