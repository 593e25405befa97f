"""ResMLP on CIFAR-10 (Large et al. 2024, §4's residual MLP).

    modzoo train --config configs/resmlp_cifar10.py --workdir runs/resmlp_cifar10
    modzoo train --config configs/resmlp_cifar10.py:optim=scion --workdir runs/resmlp_cifar10_scion
"""

from configs.common import base


def get_config(arg=None):
    c = base(
        model={"name": "resmlp-small"},
        data={"name": "cifar10", "augment": True, "eval_split": "test"},
        optim="normalized_adam",
        learning_rates={"scion": 0.05, "normalized_adam": 0.1, "muon": 0.02, "adamw": 1e-3},
        steps=2000,
        batch_size=128,
        arg=arg,
    )
    c.optim.scion.update({"momentum": 0.1, "constrained": False})
    c.train.eval_batch_size = 512
    c.train.sample_tokens = 0
    c.train.log_every = 50
    if c.test:
        c.model.update({"width": 32, "depth": 1})
        c.train.update({"steps": 4, "batch_size": 16, "log_every": 1, "checkpoint_every": 2, "eval_batches": 2})
    return c
