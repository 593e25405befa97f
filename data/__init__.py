"""modzoo's input side: datasets, grain pipelines, downloads and multi-host placement.

Every dataset is a tensorflow-datasets builder prepared once into ArrayRecord
(no TensorFlow needed) and read through tfds data sources; "tfds:<name>" with
data_dir= reads any TFDS dataset already prepared in ArrayRecord instead.

Text (bytes, vocabulary 256, or byte-level BPE ids; splits "train"/"validation" = first 90% / last 10% of bytes)::

    ds = data.text_dataset("tinyshakespeare", "train", context=256)   # or "tinystories", or a file path
    it = data.make_train_iterator(ds, 64, seed=0)                     # {"tokens": int32 [64/hosts, 257]}
    val = data.make_eval_batches(data.text_dataset("tinyshakespeare", "validation", 256), 64)
    # each eval batch: {"tokens": int32 [B, 257], "mask": float32 [B, 256]}; sum of masks = targets in the split
    tfds_text = data.text_dataset("tfds:<name>", "test", 256, data_dir=tfds_dir, feature="text", separator=b"\n\n")
    # a prepared TFDS dataset's text (or bytes) feature, its examples joined in order; any of its splits
    from data.tokenizer import train_bpe                              # imported on use (Hugging Face tokenizers)
    ids = ds.tokenized(train_bpe(ds.tokens.tobytes(), 512))           # byte-level BPE learnt from the train split

Images::

    ds = data.image_dataset("cifar10", "train")     # or a folder/tar path, or "tfds:<name>" with data_dir=
    it = data.make_train_iterator(ds, 512, seed=0)  # {"image": float32 [B, 32, 32, 3], "label": int32 [B]}
    test = data.make_eval_batches(data.image_dataset("cifar10", "test"), 512)   # adds "mask": float32 [B]

Checkpoints: `data.iterator_state(it)` gives JSON bytes, `data.restore_iterator(fresh_it, state)`
puts a new iterator (same dataset and arguments) back where the old one was.
Multi-host: every host calls the same code; each reads its own slice (by
jax.process_index()/process_count(), overridable with process_index=/process_count=)
and `data.to_global(batch, mesh, ("data",))` assembles the global jax arrays.

Folders: raw files in data.resolve_data_dir() (argument, $MODZOO_DATA_DIR,
~/.cache/modzoo; read-only is fine), prepared ArrayRecord copies in
data.resolve_cache_dir() (argument, $MODZOO_CACHE_DIR, ~/.cache/modzoo/prepared),
made by data.prepare_text / data.prepare_images once per source file (keyed by
its path, size and mtime), written by TFDS into a temporary folder renamed into
place when complete, and reused afterwards.
Known files (data.paths' catalogue) are checked against their checksum on first
use, the match remembered beside the prepared copy (a mismatch raises
ChecksumError); missing ones are downloaded, verified and written atomically
(MissingDataError when that fails). data.file_digest is the project's one file hasher.
Throughput: ``modzoo bench data`` (zoo/benchmarks/input_pipeline.py).
"""
from data.checksum import ChecksumError, file_digest
from data.distributed import Shard, current_shard, to_global
from data.download import DownloadError, download
from data.images import ImageDataset, channel_stats, image_dataset
from data.paths import MissingDataError, RemoteFile, fetch, resolve_cache_dir, resolve_data_dir
from data.pipeline import iterator_state, make_eval_batches, make_train_iterator, restore_iterator
from data.text import TextDataset, text_dataset
from data.tfds_builder import prepare_images, prepare_text

__all__ = [
    "ChecksumError",
    "DownloadError",
    "ImageDataset",
    "MissingDataError",
    "RemoteFile",
    "Shard",
    "TextDataset",
    "channel_stats",
    "current_shard",
    "download",
    "fetch",
    "file_digest",
    "image_dataset",
    "iterator_state",
    "make_eval_batches",
    "make_train_iterator",
    "prepare_images",
    "prepare_text",
    "resolve_cache_dir",
    "resolve_data_dir",
    "restore_iterator",
    "text_dataset",
    "to_global",
]
