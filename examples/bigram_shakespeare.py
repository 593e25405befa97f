"""The bigram MLP of examples/my_models.py on Tiny Shakespeare (run from the repository root):

    modzoo train --config examples/bigram_shakespeare.py --workdir runs/bigram
    modzoo sample --config examples/bigram_shakespeare.py --workdir runs/bigram --prompt "ROMEO:"
"""

from configs.common import base
from examples import my_models  # noqa: F401  (registers the models)


def get_config(arg=None):
    c = base(model={"name": "bigram-mlp"}, data={"name": "tinyshakespeare"}, optim="normalized_adam",
             learning_rates={"scion": 0.05, "normalized_adam": 0.1, "normalized_sgd": 0.1, "muon": 0.02,
                             "adamw": 3e-3},
             steps=500, batch_size=32, arg=arg)
    if c.test:
        c.model.update({"width": 32, "depth": 1, "context": 16})
        c.train.update({"steps": 6, "batch_size": 8, "log_every": 2, "checkpoint_every": 3, "eval_batch_size": 512,
                        "sample_tokens": 20})
    return c
