"""grain pipelines over a TextDataset or ImageDataset: the training iterator, evaluation batches, and iterator state.

Both dataset kinds provide `train_batches(batch_size, seed, shard_index,
shard_count)` and `eval_batches(batch_size, shard_index, shard_count)` as
grain.MapDatasets of per-host batches; this module picks the shard, turns the
global batch size into a per-host one, and adds threads, prefetch and
(optionally) worker processes.
"""
from __future__ import annotations

import json

import grain
from absl import flags

from data.distributed import current_shard, per_host_batch


def make_train_iterator(
    dataset,
    global_batch_size: int,
    *,
    seed: int,
    process_index: int | None = None,
    process_count: int | None = None,
    num_threads: int = 2,
    prefetch: int = 4,
    worker_count: int = 0,
) -> grain.DatasetIterator:
    """An endless, seeded iterator of this host's training batches (global_batch_size / process_count rows).

    The iterator's get_state()/set_state() (or iterator_state/restore_iterator
    below) checkpoint its position exactly, mid-epoch included. worker_count > 0
    moves the pipeline into that many processes (grain.mp_prefetch); the state
    stays exact.

    Hosts deal out one seeded stream of examples between them, so at every
    step their batches together hold the examples of the one-host batch of
    that step (rows in another order), and every host's state is the same
    position: a checkpoint needs process 0's only.
    """
    shard = current_shard(process_index, process_count)
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    batches = dataset.train_batches(per_host_batch(global_batch_size, shard), seed, shard.index, shard.count)
    stream = batches.to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch))
    if worker_count > 0:
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()  # grain 0.2.18's workers read absl flags; plain scripts never parse them
        stream = stream.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
    return iter(stream)


def make_eval_batches(
    dataset,
    global_batch_size: int,
    *,
    process_index: int | None = None,
    process_count: int | None = None,
) -> grain.MapDataset:
    """This host's evaluation batches, in a fixed order: a grain.MapDataset (len(), [i], and re-iterable).

    Each batch has a float32 "mask" (per target token for text, per example
    for images); padding fills the last batches so every host has the same
    count. A mask-weighted mean over all hosts is the metric on the whole split.
    """
    shard = current_shard(process_index, process_count)
    return dataset.eval_batches(per_host_batch(global_batch_size, shard), shard.index, shard.count)


def iterator_state(iterator: grain.DatasetIterator) -> bytes:
    """The iterator's position as JSON bytes, for a checkpoint (e.g. an Orbax JsonSave item or raw bytes)."""
    return json.dumps(iterator.get_state()).encode()


def restore_iterator(iterator: grain.DatasetIterator, state: bytes | str | dict) -> grain.DatasetIterator:
    """Move a freshly made iterator (same dataset and arguments) to a saved position; return it."""
    iterator.set_state(state if isinstance(state, dict) else json.loads(state))
    return iterator
