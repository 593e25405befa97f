"""Throughput of the training pipelines: augmented CIFAR-10 images/s and Tiny Shakespeare tokens/s.

Each pipeline is warmed up, then timed over `steps` batches `repeats` times;
the median rate is reported. Tokens/s counts every token id delivered
(batch x (context + 1)).
"""
from __future__ import annotations

import os
import statistics
import time

from data.images import image_dataset
from data.pipeline import make_train_iterator
from data.text import text_dataset


def _rate(iterator, items_per_batch: int, steps: int, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        next(iterator)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            next(iterator)
        rates.append(steps * items_per_batch / (time.perf_counter() - start))
    return statistics.median(rates)


def run(
    *,
    image_batch: int = 256,
    text_batch: int = 64,
    context: int = 256,
    steps: int = 20,
    warmup: int = 5,
    repeats: int = 5,
    num_threads: int = 2,
    worker_count: int = 0,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    verbose: bool = True,
) -> dict[str, float]:
    """Measure both pipelines on this host and return {"images_per_s": ..., "tokens_per_s": ...}.

    The first call may prepare CIFAR-10 and Tiny Shakespeare into the cache folder (once; not timed).
    verbose: also print a small table.
    """
    options = dict(seed=seed, num_threads=num_threads, worker_count=worker_count, process_index=0, process_count=1)
    images = image_dataset("cifar10", "train", data_dir=data_dir, cache_dir=cache_dir)
    text = text_dataset("tinyshakespeare", "train", context, data_dir=data_dir, cache_dir=cache_dir)
    result = {
        "images_per_s": _rate(make_train_iterator(images, image_batch, **options), image_batch, steps, warmup, repeats),
        "tokens_per_s": _rate(
            make_train_iterator(text, text_batch, **options), text_batch * (context + 1), steps, warmup, repeats
        ),
    }
    if verbose:
        print(f"{'pipeline':<36}{'rate':>16}")
        print(f"{f'cifar10 train, batch {image_batch}, augmented':<36}{result['images_per_s']:>12,.0f} img/s")
        print(f"{f'tinyshakespeare, batch {text_batch}x{context + 1}':<36}{result['tokens_per_s']:>12,.0f} tok/s")
    return result
