"""Text: a corpus's bytes are its tokens (vocabulary 256), or its token ids after `TextDataset.tokenized` (byte-level
BPE, data.tokenizer); split and cut into windows.

Sources. A corpus ("tinyshakespeare", "tinystories", or the path of a local
UTF-8 file) is prepared once by a TFDS builder (tfds_builder.prepare_text) into
ArrayRecord in the cache folder, then read back through the builder's
as_data_source(): the split's ordered 64 KiB records are joined once into a
read-only uint8 array that equals the file's byte range exactly. Split rule
(every corpus): the first 90% of bytes (n * 9 // 10) are "train", the rest
"validation"; Tiny Shakespeare gives 1,003,854 / 111,540. A tokenizer encodes
each split on its own, after the cut; the windows below then count its tokens.

"tfds:<name>" reads instead a TFDS dataset already prepared in ArrayRecord
under `data_dir` (its TFDS data folder), without TensorFlow: the split is any
of the dataset's own ("train", "test", ...; TFDS slices such as "train[:90%]"
work too), and its examples' `feature` (a text or bytes feature, default
"text"; str is encoded as UTF-8) are joined in record order with `separator`
(default b"\n\n") between them.

Training windows: each epoch cuts the train split into n // (context+1)
non-overlapping windows of context+1 bytes, starting at a seeded random offset
in [0, n mod (context+1)], and visits them in a seeded random order (a new offset
and order every epoch). One epoch therefore sees every byte at most once.

Evaluation windows: consecutive windows that step by `context`, so window j
predicts targets j*context+1 .. j*context+context and every byte after the first
is a target exactly once. The tail: the last window is the final context+1 bytes
of the split, and its "mask" keeps only the targets no earlier window scored.
Batches are padded to full size with mask-0 rows, so sum(mask) == n - 1 and a
mask-weighted mean is the loss on the whole split.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import pathlib

import grain
import numpy as np

from data.paths import TINY_SHAKESPEARE, TINYSTORIES_SUBSET, RemoteFile, fetch
from data.tfds_builder import TFDS_PREFIX, open_prepared, prepare_text

VOCAB_SIZE = 256
SPLITS = ("train", "validation")
CORPORA: dict[str, RemoteFile] = {"tinyshakespeare": TINY_SHAKESPEARE, "tinystories": TINYSTORIES_SUBSET}
_READ_BATCH = 256  # records fetched per data-source call when joining a split


def split_bounds(num_bytes: int, split: str) -> tuple[int, int]:
    """Byte range [start, stop) of `split` in a corpus of `num_bytes` bytes (first 90% train, rest validation)."""
    if split not in SPLITS:
        raise ValueError(f"unknown text split {split!r}: use one of {SPLITS}")
    cut = num_bytes * 9 // 10
    return (0, cut) if split == "train" else (cut, num_bytes)


def _corpus_path(name_or_path: str | os.PathLike, data_dir, cache_dir) -> pathlib.Path:
    if str(name_or_path) in CORPORA:
        return fetch(CORPORA[str(name_or_path)], data_dir, cache_dir=cache_dir)
    path = pathlib.Path(name_or_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"text dataset {str(name_or_path)!r} is neither a known corpus ({', '.join(CORPORA)}) nor a file"
            f" (nothing at {path.resolve()}): give a corpus name or the path of a UTF-8 text file"
        )
    return path


@dataclasses.dataclass(frozen=True, eq=False)
class TextDataset:
    """One split of a corpus, cut into windows of `context` + 1 tokens.

    `tokens` is a read-only array of the split's tokens, held in memory: its
    bytes (uint8) as `text_dataset` returns it, or token ids after `tokenized`.
    """

    tokens: np.ndarray
    context: int
    name: str
    split: str
    tokenizer: object = None  # a data.tokenizer.BPE after `tokenized`; None: the tokens are bytes

    @property
    def vocab_size(self) -> int:
        return VOCAB_SIZE if self.tokenizer is None else self.tokenizer.vocab_size

    def tokenized(self, tokenizer) -> TextDataset:
        """This byte-level split encoded by `tokenizer` (a data.tokenizer.BPE); a one-line error when it has fewer
        than context + 1 tokens."""
        if self.tokenizer is not None:
            raise ValueError(f"the {self.split} split of {self.name} is tokenized already")
        ids = tokenizer.encode(self.tokens.tobytes())
        _check_length(len(ids), self.context, self.split, self.name, unit="tokens")
        tokens = ids.astype(np.uint16 if tokenizer.vocab_size <= 2**16 else np.int32)
        tokens.flags.writeable = False
        return dataclasses.replace(self, tokens=tokens, tokenizer=tokenizer)

    def target_counts(self, num_windows: int | None = None) -> tuple[int, int]:
        """(tokens, bytes) scored by the first `num_windows` evaluation windows (all: None), the windows
        `eval_batches` cuts, so a mean loss per token times tokens / bytes is the loss in nats per byte."""
        total = self.num_eval_windows()
        ids = np.arange(total if num_windows is None else min(num_windows, total))
        batch = self._eval_batch(ids, total)
        mask, targets = batch["mask"], batch["tokens"][:, 1:]
        lengths = np.ones_like(targets) if self.tokenizer is None else self.tokenizer.token_bytes[targets]
        return int(mask.sum()), int((mask * lengths).sum())

    @property
    def window(self) -> int:
        """Tokens per example: context inputs plus the one extra target."""
        return self.context + 1

    def num_train_windows(self) -> int:
        """Windows per training epoch: len(tokens) // (context + 1)."""
        return len(self.tokens) // self.window

    def num_eval_windows(self) -> int:
        """Evaluation windows needed so that every target 1..n-1 is scored once."""
        return -(-(len(self.tokens) - 1) // self.context)

    @functools.lru_cache(maxsize=4)
    def _epoch_offset(self, seed: int, epoch: int) -> int:
        slack = len(self.tokens) - self.num_train_windows() * self.window
        return int(np.random.default_rng((seed, epoch)).integers(0, slack + 1))

    def _gather(self, starts: np.ndarray) -> np.ndarray:
        return self.tokens[starts[:, None] + np.arange(self.window)].astype(np.int32)

    def train_batches(self, batch_size: int, seed: int, shard_index: int, shard_count: int) -> grain.MapDataset:
        """Endless per-host batches {"tokens": int32 [batch_size, context+1]} (see the module docstring)."""
        per_epoch = self.num_train_windows()

        def start(position: int, window: int) -> int:
            return self._epoch_offset(seed, position // per_epoch) + window * self.window

        starts = grain.MapDataset.range(per_epoch).shuffle(seed=seed).repeat(None).map_with_index(start)
        batches = starts[shard_index::shard_count].batch(batch_size, drop_remainder=True)
        return batches.map(lambda s: {"tokens": self._gather(np.asarray(s))})

    def eval_batches(self, batch_size: int, shard_index: int, shard_count: int) -> grain.MapDataset:
        """Ordered per-host batches {"tokens": int32 [B, context+1], "mask": float32 [B, context]}.

        Host k takes windows k, k+count, ...; every host gets the same number of
        batches (padding rows have mask 0), so hosts stay in step.
        """
        total = self.num_eval_windows()
        per_host = -(-total // (shard_count * batch_size)) * batch_size
        ids = grain.MapDataset.range(per_host * shard_count)[shard_index::shard_count]
        return ids.batch(batch_size).map(lambda j: self._eval_batch(np.asarray(j), total))

    def _eval_batch(self, ids: np.ndarray, total: int) -> dict[str, np.ndarray]:
        valid = ids < total
        first_target = np.where(valid, ids, 0) * self.context  # offset of the first new target, minus one
        starts = np.minimum(first_target, len(self.tokens) - self.window)
        tokens = self._gather(starts)
        tokens[~valid] = 0
        mask = (np.arange(self.context)[None, :] >= (first_target - starts)[:, None]) & valid[:, None]
        return {"tokens": tokens, "mask": mask.astype(np.float32)}


def _is_text_feature(spec) -> bool:
    """Whether a TFDS feature holds one string (Text, or a scalar bytes Tensor) or a 1-D uint8 array."""
    shape, dtype = getattr(spec, "shape", None), getattr(spec, "np_dtype", None)
    if not isinstance(shape, tuple) or isinstance(dtype, dict):
        return False
    return (shape == () and np.dtype(dtype) == object) or (len(shape) == 1 and np.dtype(dtype) == np.uint8)


def _as_bytes(value) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    return value.tobytes() if isinstance(value, np.ndarray) else bytes(value)


def _join(source, feature: str, separator: bytes) -> np.ndarray:
    """The `feature` values of all records of `source`, in order and joined by `separator`, as read-only uint8."""
    joined = bytearray()
    for start in range(0, len(source), _READ_BATCH):
        records = source.__getitems__(list(range(start, min(start + _READ_BATCH, len(source)))))
        for i, record in enumerate(records):
            if start or i:
                joined += separator
            joined += _as_bytes(record[feature])
    tokens = np.frombuffer(joined, np.uint8)
    tokens.flags.writeable = False
    return tokens


def _tfds_tokens(name: str, split: str, data_dir, feature: str, separator: bytes) -> np.ndarray:
    builder = open_prepared(name, data_dir)
    features = builder.info.features
    if feature not in features:
        raise ValueError(
            f"{name} has no feature {feature!r}: pass feature= one of its features ({', '.join(features.keys())})"
        )
    if not _is_text_feature(features[feature]):
        raise ValueError(f"feature {feature!r} of {name} is {features[feature]!r}, not text or bytes")
    available = builder.info.splits
    if split.split("[")[0] not in available:
        raise ValueError(f"unknown split {split!r} for {name}: available {', '.join(sorted(available))}")
    return _join(builder.as_data_source(split=split), feature, separator)


def _check_length(length: int, context: int, split: str, where, unit: str = "bytes") -> None:
    if length < context + 1:
        raise ValueError(
            f"the {split} split of {where} has {length} {unit}, fewer than context + 1 = {context + 1}:"
            " use a smaller context or a longer file"
        )


def _corpus_tokens(path: pathlib.Path, split: str, context: int, cache_dir) -> np.ndarray:
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"text file {path} is empty: give a file with some text in it")
    start, stop = split_bounds(size, split)
    # Checked before preparing, so no file with an empty split (which TFDS cannot write) is ever prepared.
    _check_length(stop - start, context, split, path)
    builder = prepare_text(path, {s: split_bounds(size, s) for s in SPLITS}, cache_dir=cache_dir)
    return _join(builder.as_data_source(split=split), "text", b"")


def text_dataset(
    name_or_path: str | os.PathLike,
    split: str,
    context: int,
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    feature: str = "text",
    separator: bytes = b"\n\n",
) -> TextDataset:
    """A split of a byte-level corpus: 'tinyshakespeare', 'tinystories', a local text file's path, or 'tfds:<name>'.

    Known corpora are looked up in the data folder, checked against their
    catalogue checksum on first use (data.ChecksumError on a mismatch) and
    downloaded when missing and a canonical URL exists (data.MissingDataError
    when that fails); corpora and files are prepared once into the cache
    folder. A local file's path is used as it is, unchecked. For 'tfds:<name>',
    data_dir is the TFDS data folder and `feature` and `separator` say what to
    join (see the module docstring); they are not used otherwise. Raises
    ValueError when the file is empty, the split or feature is unknown, or the
    split is shorter than context + 1 bytes.
    """
    if context < 1:
        raise ValueError(f"context must be a positive number of tokens, got {context}")
    name = str(name_or_path)
    if name.startswith(TFDS_PREFIX):
        tokens = _tfds_tokens(name, split, data_dir, feature, separator)
        _check_length(len(tokens), context, split, name)
    else:
        path = _corpus_path(name_or_path, data_dir, cache_dir)
        tokens = _corpus_tokens(path, split, context, cache_dir)
        name = name if name in CORPORA else path.stem
    return TextDataset(tokens=tokens, context=context, name=name, split=split)
