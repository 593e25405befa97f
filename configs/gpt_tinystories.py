"""GPT on the TinyStories subset (bytes), from scratch.

    modzoo train --config configs/gpt_tinystories.py --workdir runs/gpt_tinystories

Same model and optimizer settings as the Shakespeare job, so the fine-tuning
config (gpt_finetune_tinystories.py) differs from this one only in its start.
"""

from configs import gpt_shakespeare


def get_config(arg=None):
    c = gpt_shakespeare.get_config(arg)
    c.data.name = "tinystories"
    c.train.steps = 20 if c.test else 600
    c.train.sample_prompt = "Once upon a time"
    return c
