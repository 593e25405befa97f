"""Learning-rate transfer across width: ResMLP on CIFAR-10, widths 32 to 256 at depth 2.

    modzoo sweep --config configs/sweeps/resmlp_width.py --workdir runs/resmlp_width        # CPU scale
    modzoo sweep --config configs/sweeps/resmlp_width.py:gpu --workdir runs/resmlp_width_gpu  # GPU scale

CPU scale: 2 residual blocks, batch 128, 500 steps (1.3 epochs) of linear
decay, no augmentation, test loss on all 10,000 test images; the same
optimizers as the GPT sweeps with rate ranges of their own. Measured: 24.3 min on
the 2-core CPU at ``--parallel 2`` (resmlp_width/summary.md). GPU
scale: widths 256 to 2048, 4 blocks, batch 512, 3,000 steps, with augmentation.
"""

from configs.common import base, parse_arg
from configs.sweeps.common import point_bookkeeping, sweep_section

RATES = {"scion": (-8, -2), "normalized_adam": (-6, 0), "muon": (-9, -3), "adamw": (-13, -7)}


def get_config(arg=None):
    args = parse_arg(arg, ("test", "gpu"))
    gpu, test = "gpu" in args, "test" in args
    c = base(model={"name": "resmlp-small", "depth": 4 if gpu else 2},
             data={"name": "cifar10", "augment": gpu, "eval_split": "test"}, optim="normalized_adam",
             learning_rates={}, steps=3000 if gpu else 500, batch_size=512 if gpu else 128, arg=None)
    point_bookkeeping(c)
    c.train.eval_batch_size = 1000
    c.sweep = sweep_section(axis="width", sizes=(256, 512, 1024, 2048) if gpu else (32, 64, 128, 256), rates=RATES)
    if test:
        c.train.update({"steps": 6, "batch_size": 32, "log_every": 2, "checkpoint_every": 2, "norm_every": 2,
                        "eval_batches": 2})
        c.sweep = sweep_section(axis="width", sizes=(16, 32), rates={"adamw": (-7, -6)}, seeds=(0,), extend=0)
    return c
