"""The pixel MLP of examples/my_models.py on CIFAR-10 (run from the repository root):

    modzoo train --config examples/pixel_mlp_cifar10.py --workdir runs/pixel_mlp
"""

from configs.common import base
from examples import my_models  # noqa: F401  (registers the models)


def get_config(arg=None):
    c = base(model={"name": "pixel-mlp"}, data={"name": "cifar10", "augment": False, "eval_split": "test"},
             optim="normalized_adam",
             learning_rates={"scion": 0.05, "normalized_adam": 0.1, "normalized_sgd": 0.1, "muon": 0.02,
                             "adamw": 1e-3},
             steps=1000, batch_size=128, arg=arg)
    c.train.sample_tokens = 0
    if c.test:
        c.model.update({"width": 32, "depth": 1})
        c.train.update({"steps": 4, "batch_size": 16, "log_every": 1, "checkpoint_every": 2, "eval_batch_size": 512,
                        "eval_batches": 2})
    return c
