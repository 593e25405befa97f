"""GPT on the TinyStories subset, from scratch.

    modzoo train --config configs/gpt_tinystories.py --workdir runs/gpt_tinystories

Same model, optimizer and tokenizer settings as the Shakespeare job (a BPE of 512
tokens, here learnt from TinyStories' train split), so the fine-tuning config
(gpt_finetune_tinystories.py) differs from this one in its start and in reading
the pretrained model's own tokenizer: compare the two in nats per byte.
"""

from configs import gpt_shakespeare


def get_config(arg=None):
    c = gpt_shakespeare.get_config(arg)
    c.data.name = "tinystories"
    c.train.steps = 20 if c.test else 600
    c.train.sample_prompt = "Once upon a time"
    return c
