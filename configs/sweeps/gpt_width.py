"""Learning-rate transfer across width: GPT on Tiny Shakespeare bytes, widths 32 to 256 at depth 2.

    modzoo sweep --config configs/sweeps/gpt_width.py --workdir runs/gpt_width        # CPU scale
    modzoo sweep --config configs/sweeps/gpt_width.py:gpu --workdir runs/gpt_width_gpu  # GPU scale

CPU scale: 4 heads, context 64, batch 16, 300 steps of linear decay, no
warmup; Scion, normalized Adam, Muon and AdamW over rates 2^lo..2^hi (extended
past an edge optimum), seed 1 at each optimum and its neighbours. Measured:
34.6 min on the 2-core CPU at ``--parallel 2`` (gpt_width/summary.md).
GPU scale: widths 128 to 1024 at depth 4, 8 heads, context 256, batch 64,
2,000 steps. Any point reruns on its own with the ``command`` column of
results.csv.
"""

from configs.common import base, parse_arg
from configs.sweeps.common import point_bookkeeping, sweep_section

RATES = {"scion": (-8, -2), "normalized_adam": (-6, 0), "muon": (-9, -3), "adamw": (-11, -5)}


def get_config(arg=None):
    args = parse_arg(arg, ("test", "gpu"))
    gpu, test = "gpu" in args, "test" in args
    c = base(model={"name": "gpt-tiny", "depth": 4 if gpu else 2, "heads": 8 if gpu else 4,
                    "context": 256 if gpu else 64},
             data={"name": "tinyshakespeare"}, optim="normalized_adam", learning_rates={},
             steps=2000 if gpu else 300, batch_size=64 if gpu else 16, arg=None)
    point_bookkeeping(c)
    widths = (128, 256, 512, 1024) if gpu else (32, 64, 128, 256)
    c.sweep = sweep_section(axis="width", sizes=widths, rates=RATES)
    if test:
        c.model.update({"context": 16, "heads": 2})
        c.train.update({"steps": 8, "batch_size": 8, "log_every": 2, "checkpoint_every": 4, "norm_every": 4,
                        "eval_batch_size": 512})
        # AdamW at 2^10 diverges: the miniature sweep must record it, not drop it.
        c.sweep = sweep_section(axis="width", sizes=(16, 32), rates={"normalized_adam": (-3, -2), "adamw": (10, 10)},
                                seeds=(0,), extend=0)
    return c
