"""``modzoo bench data``: input-pipeline rates beside the train step's consumption rate.

For the default configs (GPT on Tiny Shakespeare, ResMLP on CIFAR-10) it
measures how fast the grain pipeline delivers (tokens counted as every id
delivered, batch x (context + 1); images augmented) and how fast one
jitted train step consumes, with each config's own batch size and context;
a ratio above 1 means the pipeline is never the bottleneck.
"""

from __future__ import annotations

import jax
import numpy as np

import data
from configs import gpt_shakespeare, resmlp_cifar10
from zoo.benchmarks.timing import median_seconds
from zoo.models.base import modality_of
from zoo.train.loop import Run, model_config


def consumption_rate(config, repeats: int = 5) -> float:
    """Examples (tokens for GPT, images otherwise) one train step of ``config`` consumes per second."""
    run = Run(config)
    cfg = run.model_cfg
    batch = {k: np.asarray(v) for k, v in cfg.example_batch(config.train.batch_size, jax.random.key(0)).items()}
    batch = run.global_batch(batch)
    state = [run.params, run.opt_state]

    def step():
        state[0], state[1], metrics = run.step_fn(state[0], state[1], batch)
        return metrics

    per_step = config.train.batch_size * (cfg.context if modality_of(cfg) == "text" else 1)
    return per_step / median_seconds(step, repeats)


def delivery_rate(dataset, batch_size: int, items_per_batch: int, *, steps: int = 20, repeats: int = 5) -> float:
    """Items per second the grain train iterator of ``dataset`` delivers (median over ``repeats`` runs of
    ``steps`` batches, after one warm-up run); decoding and augmentation included, on this host's threads."""
    iterator = data.make_train_iterator(dataset, batch_size, seed=0, process_index=0, process_count=1)
    return steps * items_per_batch / median_seconds(lambda: [next(iterator) for _ in range(steps)], repeats)


def run(repeats: int = 5) -> dict:
    """Print and return pipeline and consumption rates for the default text and image configs."""
    text_cfg, image_cfg = gpt_shakespeare.get_config(), resmlp_cifar10.get_config()
    context = model_config(text_cfg).context
    text_batch, image_batch = text_cfg.train.batch_size, image_cfg.train.batch_size
    pipe = {
        "tokens_per_s": delivery_rate(data.text_dataset(text_cfg.data.name, "train", context), text_batch,
                                      text_batch * (context + 1), repeats=repeats),
        "images_per_s": delivery_rate(data.image_dataset(image_cfg.data.name, "train", augment=True), image_batch,
                                      image_batch, repeats=repeats),
    }
    tokens = consumption_rate(text_cfg, repeats)
    images = consumption_rate(image_cfg, repeats)
    print(f"{'':<34}{'pipeline':>14}{'train step':>14}{'ratio':>8}")
    print(f"{'tokens/s (gpt_shakespeare)':<34}{pipe['tokens_per_s']:>14,.0f}{tokens:>14,.0f}"
          f"{pipe['tokens_per_s'] / tokens:>8.1f}")
    print(f"{'images/s (resmlp_cifar10)':<34}{pipe['images_per_s']:>14,.0f}{images:>14,.0f}"
          f"{pipe['images_per_s'] / images:>8.1f}")
    return {"pipeline": pipe, "train_tokens_per_s": tokens, "train_images_per_s": images}
