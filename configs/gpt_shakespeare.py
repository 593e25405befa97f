"""GPT on Tiny Shakespeare: modzoo's default main job.

Byte-level BPE of 512 tokens learnt from the train split (about 1.9 bytes per
token), normalized Adam with its per-atom weight decay 0.1; validation is
reported in nats per token (``loss``) and per byte (``nats_per_byte``). The
tests' variant reads bytes (the BPE path has tests of its own).

    modzoo train --config configs/gpt_shakespeare.py --workdir runs/gpt_shakespeare
    modzoo train --config configs/gpt_shakespeare.py:optim=adamw --workdir runs/gpt_shakespeare_adamw
    modzoo train --config configs/gpt_shakespeare.py:test --workdir /tmp/quick     # the tests' variant

Optimizer by one field: ``optim=`` in the arg or ``--config.optim.name=``
(scion | normalized_adam | muon | adamw), each with its own learning rate.
"""

from configs.common import base


def get_config(arg=None):
    c = base(
        model={"name": "gpt-shakespeare", "vocab": 512},
        data={"name": "tinyshakespeare", "tokenizer": "bpe:512"},
        optim="normalized_adam",
        learning_rates={"scion": 0.05, "normalized_adam": 0.07, "muon": 0.02, "adamw": 3e-3},
        steps=1600,
        batch_size=16,
        arg=arg,
    )
    c.optim.normalized_adam.weight_decay = 0.1
    c.train.log_every = 50
    if c.test:
        c.data.tokenizer = "bytes"
        c.model.update({"width": 32, "depth": 1, "context": 16, "vocab": 256})
        c.train.update({"steps": 6, "batch_size": 8, "log_every": 1, "checkpoint_every": 3, "eval_batch_size": 512,
                        "sample_tokens": 8})
    return c
