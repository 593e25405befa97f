"""Learning-rate transfer across depth: GPT on Tiny Shakespeare bytes, 1 to 8 blocks at width 64.

    modzoo sweep --config configs/sweeps/gpt_depth.py --workdir runs/gpt_depth        # CPU scale
    modzoo sweep --config configs/sweeps/gpt_depth.py:gpu --workdir runs/gpt_depth_gpu  # GPU scale

CPU scale: width 64, 4 heads, context 64, batch 16, 300 steps of linear
decay; the same optimizers, rate ranges and seeds as gpt_width.py. Measured:
18.5 min on the 2-core CPU at ``--parallel 2`` (gpt_depth/summary.md). GPU scale: width 256, 4 to 32 blocks, context 256, batch 64, 2,000 steps.
"""

from configs.common import base, parse_arg
from configs.sweeps.common import point_bookkeeping, sweep_section
from configs.sweeps.gpt_width import RATES


def get_config(arg=None):
    args = parse_arg(arg, ("test", "gpu"))
    gpu, test = "gpu" in args, "test" in args
    c = base(model={"name": "gpt-tiny", "width": 256 if gpu else 64, "heads": 4, "context": 256 if gpu else 64},
             data={"name": "tinyshakespeare"}, optim="normalized_adam", learning_rates={},
             steps=2000 if gpu else 300, batch_size=64 if gpu else 16, arg=None)
    point_bookkeeping(c)
    c.sweep = sweep_section(axis="depth", sizes=(4, 8, 16, 32) if gpu else (1, 2, 4, 8), rates=RATES)
    if test:
        c.model.update({"width": 16, "context": 16, "heads": 2})
        c.train.update({"steps": 8, "batch_size": 8, "log_every": 2, "checkpoint_every": 4, "norm_every": 4,
                        "eval_batch_size": 512})
        c.sweep = sweep_section(axis="depth", sizes=(1, 2), rates={"scion": (-4, -3)}, seeds=(0,), extend=0)
    return c
