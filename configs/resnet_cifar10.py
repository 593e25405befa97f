"""ResNet on CIFAR-10 with Modula's per-tap orthogonal convolutions.

    modzoo train --config configs/resnet_cifar10.py --workdir runs/resnet_cifar10
    modzoo train --config configs/resnet_cifar10.py:optim=scion --workdir runs/resnet_cifar10_scion

Scion's published CIFAR-10 settings (conv radius 8, head 128, lr 0.05,
momentum 0.6) are for a different network; these defaults are the zoo's.
"""

from configs.common import base


def get_config(arg=None):
    c = base(
        model={"name": "resnet-small"},
        data={"name": "cifar10", "augment": True, "eval_split": "test"},
        optim="scion",
        learning_rates={"scion": 0.05, "normalized_adam": 0.1, "muon": 0.02, "adamw": 1e-3},
        steps=3000,
        batch_size=128,
        arg=arg,
    )
    c.optim.scion.update({"momentum": 0.5, "constrained": False})
    c.train.eval_batch_size = 512
    c.train.sample_tokens = 0
    c.train.log_every = 50
    if c.test:
        c.model.update({"width": 4, "depth": 1})
        c.train.update({"steps": 4, "batch_size": 16, "log_every": 1, "checkpoint_every": 2, "eval_batches": 2})
    return c
