"""A sweep's report: ``results.csv``, ``sweep.png``, ``size.png`` and ``summary.md``, from its points' results.

Per optimizer and size the *best rate* is the one of lowest mean validation
loss over the seeds run there (diverged points never win). The *drift* is
log2(largest best rate / smallest best rate) across sizes, in octaves (grid
steps); *transfer* asks whether, at the rate that was best on the smallest
model, validation loss falls at every step up in size.
"""

from __future__ import annotations

import csv
import io
import json
import math
import pathlib

from data.atomic import write_bytes

COLUMNS = ("optimizer", "axis", "value", "width", "depth", "learning_rate", "lr_exponent", "seed", "steps",
           "examples_seen", "unit", "first_loss", "final_train_loss", "val_loss", "val_accuracy", "diverged",
           "diverged_at_step", "seconds", "seconds_overhead", "norm_weights", "norm_update", "norm_weights_embedding",
           "norm_weights_hidden", "norm_weights_conv", "norm_weights_output", "norm_update_embedding",
           "norm_update_hidden", "norm_update_conv", "norm_update_output", "command")


def load_rows(sweep_dir: pathlib.Path) -> list[dict]:
    """Every finished point's result, sorted by optimizer, size, rate and seed."""
    rows = [json.loads(p.read_text()) for p in sorted((sweep_dir / "points").glob("*/result.json"))]
    return sorted(rows, key=lambda r: (r["optimizer"], r["value"], r["lr_exponent"], r["seed"]))


def write_csv(rows: list[dict], path: pathlib.Path) -> None:
    extra = sorted({k for r in rows for k in r} - set(COLUMNS))
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=list(COLUMNS) + extra, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in list(COLUMNS) + extra})
    write_bytes(path, text.getvalue().encode())


def curves(rows: list[dict]) -> dict[str, dict[int, dict[int, list[float]]]]:
    """{optimizer: {size: {exponent: [val loss per seed, inf if diverged]}}}."""
    out: dict = {}
    for r in rows:
        loss = math.inf if r["diverged"] or r["val_loss"] is None else r["val_loss"]
        out.setdefault(r["optimizer"], {}).setdefault(r["value"], {}).setdefault(r["lr_exponent"], []).append(loss)
    return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def analyse(rows: list[dict]) -> dict:
    """Per optimizer: the best exponent and loss per size, the drift and the transfer check."""
    out = {}
    for opt, by_size in curves(rows).items():
        sizes = sorted(by_size)
        best, best_loss, spread, edge = {}, {}, {}, {}
        for v in sizes:
            means = {e: _mean(ls) for e, ls in by_size[v].items()}
            finite = {e: m for e, m in means.items() if math.isfinite(m)}
            if not finite:
                continue
            b = min(finite, key=finite.get)
            best[v], best_loss[v] = b, finite[b]
            spread[v] = max(by_size[v][b]) - min(by_size[v][b]) if len(by_size[v][b]) > 1 else None
            edge[v] = b in (min(means), max(means))
        smallest = sizes[0]
        picked = best.get(smallest)
        at_picked = {v: _mean(by_size[v][picked]) if picked in by_size[v] else None for v in sizes}
        chain = [at_picked[v] for v in sizes]
        monotone = all(a is not None and b is not None and b < a for a, b in zip(chain, chain[1:]))
        moves = [abs(best[b] - best[a]) for a, b in zip(sizes, sizes[1:]) if a in best and b in best]
        out[opt] = {
            "sizes": sizes, "best_exponent": best, "best_loss": best_loss, "seed_spread": spread, "edge": edge,
            "drift_octaves": (max(best.values()) - min(best.values())) if best else None,
            "largest_move": max(moves) if moves else 0,
            "picked_exponent": picked, "loss_at_picked": at_picked, "monotone_at_picked": monotone,
        }
    return out


def plot(rows: list[dict], analysis: dict, axis: str, sweep_dir: pathlib.Path) -> None:
    """sweep.png (loss against rate per optimizer) and size.png (loss at the best and transferred rate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = curves(rows)
    opts = sorted(data)
    finite = [r["val_loss"] for r in rows if not r["diverged"] and r["val_loss"] is not None]
    firsts = [r["first_loss"] for r in rows if r.get("first_loss")]
    top = min(max(finite), min(firsts)) if finite and firsts else (max(finite) if finite else 1.0)
    bottom = min(finite) if finite else 0.0
    pad = 0.05 * (top - bottom or 1.0)
    fig, axes = plt.subplots(1, len(opts), figsize=(4.2 * len(opts), 3.8), squeeze=False, sharey=True)
    cmap = plt.get_cmap("viridis")
    for ax, opt in zip(axes[0], opts):
        sizes = sorted(data[opt])
        for i, v in enumerate(sizes):
            color = cmap(i / max(len(sizes) - 1, 1))
            es = sorted(data[opt][v])
            ys = [_mean(data[opt][v][e]) for e in es]
            ok = [(e, y) for e, y in zip(es, ys) if math.isfinite(y)]
            ax.plot([e for e, _ in ok], [y for _, y in ok], "o-", color=color, ms=3.5, label=f"{axis} {v}")
            bad = [e for e, y in zip(es, ys) if not math.isfinite(y)]
            ax.plot(bad, [top + pad * 0.5] * len(bad), "x", color=color, ms=5)
            b = analysis[opt]["best_exponent"].get(v)
            if b is not None:
                ax.plot([b], [analysis[opt]["best_loss"][v]], "*", color=color, ms=13, mec="black", mew=0.6)
        ax.set_title(opt)
        ax.set_xlabel("log2 learning rate")
        ax.set_ylim(bottom - pad, top + pad)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("validation loss")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"validation loss against learning rate across {axis} (star: optimum; x: diverged)", fontsize=10)
    fig.tight_layout()
    fig.savefig(sweep_dir / "sweep.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, opt in enumerate(opts):
        a = analysis[opt]
        color = plt.get_cmap("tab10")(i)
        sizes = [v for v in a["sizes"] if v in a["best_loss"]]
        ax.plot(sizes, [a["best_loss"][v] for v in sizes], "o-", color=color, label=f"{opt}, best rate per size")
        picked = [(v, y) for v, y in a["loss_at_picked"].items() if y is not None and math.isfinite(y)]
        ax.plot([v for v, _ in picked], [y for _, y in picked], "s--", color=color, ms=4, alpha=0.7,
                label=f"{opt}, rate of the smallest")
    ax.set_xscale("log", base=2)
    ax.set_xlabel(axis)
    ax.set_ylabel("validation loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(sweep_dir / "size.png", dpi=110)
    plt.close(fig)


def _fmt(x, digits=4):
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def summary_markdown(rows: list[dict], analysis: dict, axis: str, figures: dict) -> str:
    """The summary table and per-optimizer details."""
    lines = ["| optimizer | best log2 rate per " + axis + " | drift (octaves) | largest move between neighbours | "
             "loss improves with " + axis + " at the smallest model's rate |", "|---|---|---:|---:|---|"]
    for opt, a in sorted(analysis.items()):
        best = ", ".join(f"{v}: {a['best_exponent'][v]}{'*' if a['edge'][v] else ''}" for v in a["sizes"]
                         if v in a["best_exponent"])
        chain = " → ".join(_fmt(a["loss_at_picked"][v], 3) for v in a["sizes"])
        lines.append(f"| {opt} | {best} | {a['drift_octaves']} | {a['largest_move']} | "
                     f"{'yes' if a['monotone_at_picked'] else 'no'} ({chain}) |")
    lines += ["", "`*`: the optimum is on the edge of the grid that was run (extension limit reached).", ""]
    norms = {(r["optimizer"], r["value"], r["lr_exponent"]): r for r in rows if r["seed"] == min(x["seed"] for x in rows)}
    for opt, a in sorted(analysis.items()):
        lines += [f"### {opt}", "", f"| {axis} | best rate | val loss | seed spread | loss at 2^{a['picked_exponent']} | "
                  "modular norm: weights / last update | largest atom norm: hidden weights / update |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for v in a["sizes"]:
            b = a["best_exponent"].get(v)
            r = norms.get((opt, v, b), {})
            lines.append(f"| {v} | 2^{b} | {_fmt(a['best_loss'].get(v))} | {_fmt(a['seed_spread'].get(v))} | "
                         f"{_fmt(a['loss_at_picked'][v])} | {_fmt(r.get('norm_weights'), 3)} / "
                         f"{_fmt(r.get('norm_update'), 4)} | {_fmt(r.get('norm_weights_hidden'), 3)} / "
                         f"{_fmt(r.get('norm_update_hidden'), 4)} |")
        lines.append("")
    if figures:
        lines += [overhead_line(figures), ""]
    return "\n".join(lines)


def overhead_line(figures: dict) -> str:
    text = (f"{figures['points']} points, {figures['point_seconds'] / 60:.1f} min of point time; "
            f"compilation and setup {figures['overhead_share']:.1%} of it")
    if figures.get("wall_seconds"):
        text += (f"; wall {figures['wall_seconds'] / 60:.1f} min in {figures['sittings']} sitting(s) at parallel "
                 f"{figures['parallel']} "
                 f"(process starts and idle slots {figures['idle_share']:.1%} of the wall)")
    return text


def write_all(config, sweep_dir: pathlib.Path) -> dict:
    """Write results.csv, the two plots and summary.md from the points finished so far; return the figures.

    The finished sittings (``sittings.jsonl``: wall time, point time and processes of each invocation) give
    the sweep's wall time and the share of it no point was running in a slot (process starts, idle tails).
    """
    rows = load_rows(sweep_dir)
    if not rows:
        return {}
    write_csv(rows, sweep_dir / "results.csv")
    point_seconds = sum(r["seconds"] for r in rows)
    figures = {"points": len(rows), "point_seconds": point_seconds,
               "overhead_share": sum(r["seconds_overhead"] for r in rows) / max(point_seconds, 1e-9)}
    log = sweep_dir / "sittings.jsonl"
    sittings = [json.loads(x) for x in log.read_text().splitlines() if x.strip()] if log.exists() else []
    if sittings:
        wall = sum(x["wall_seconds"] for x in sittings)
        capacity = sum(x["wall_seconds"] * max(x["parallel"], 1) for x in sittings)
        figures.update(wall_seconds=wall, parallel=sittings[-1]["parallel"], sittings=len(sittings),
                       idle_share=max(0.0, 1 - sum(x["ran_seconds"] for x in sittings) / capacity))
    analysis = analyse(rows)
    plot(rows, analysis, config.sweep.axis, sweep_dir)
    text = summary_markdown(rows, analysis, config.sweep.axis, figures)
    write_bytes(sweep_dir / "summary.md", (text + "\n").encode())
    write_bytes(sweep_dir / "analysis.json", json.dumps({"figures": figures, "analysis": {
        o: {k: (v if not isinstance(v, dict) else {str(kk): vv for kk, vv in v.items()}) for k, v in a.items()}
        for o, a in analysis.items()}}, indent=1).encode())
    return figures
