"""Fine-tune the pretrained Shakespeare GPT on the TinyStories subset.

    modzoo train --config configs/gpt_finetune_tinystories.py --workdir runs/gpt_finetune_tinystories

Identical to gpt_tinystories.py but starts from the shipped ``gpt-shakespeare``
weights (``init_from``) and reads TinyStories with their tokenizer (learnt from
Shakespeare; gpt_tinystories.py learns its own from TinyStories): compare the two
runs' validation losses in nats per byte (``nats_per_byte``).
"""

from configs import gpt_tinystories
from configs.common import model_section
from zoo import pretrained


def get_config(arg=None):
    c = gpt_tinystories.get_config(arg)
    c.init_from = "gpt-shakespeare"
    c.data.tokenizer = "gpt-shakespeare"  # the weights' own, in every variant
    if c.test:  # the shipped weights fix the architecture: the test variant only shortens the run
        entry = pretrained.catalog()[c.init_from]
        c.model = model_section(entry["model"], **entry["overrides"])
    return c
