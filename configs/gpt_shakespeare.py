"""GPT on Tiny Shakespeare bytes: modzoo's default main job.

    modzoo train --config configs/gpt_shakespeare.py --workdir runs/gpt_shakespeare
    modzoo train --config configs/gpt_shakespeare.py:optim=adamw --workdir runs/gpt_shakespeare_adamw
    modzoo train --config configs/gpt_shakespeare.py:test --workdir /tmp/quick     # the tests' variant

Optimizer by one field: ``optim=`` in the arg or ``--config.optim.name=``
(scion | normalized_adam | muon | adamw), each with its own learning rate.
"""

from configs.common import base


def get_config(arg=None):
    c = base(
        model={"name": "gpt-shakespeare"},
        data={"name": "tinyshakespeare"},
        optim="normalized_adam",
        learning_rates={"scion": 0.05, "normalized_adam": 0.07, "muon": 0.02, "adamw": 3e-3},
        steps=1600,
        batch_size=16,
        arg=arg,
    )
    c.train.log_every = 50
    if c.test:
        c.model.update({"width": 32, "depth": 1, "context": 16})
        c.train.update({"steps": 6, "batch_size": 8, "log_every": 1, "checkpoint_every": 3, "eval_batch_size": 512,
                        "sample_tokens": 8})
    return c
