"""Running a sweep: units of work, worker processes, resumption and progress lines.

A *unit* is one optimizer at one size. It runs in one process, which compiles
the train step once (``zoo.train`` shares it between runs that differ only in
rate and seed) and loops over the unit's rates: the configured grid with the
first seed, rates added beyond an edge optimum (``sweep.extend``), then every
further seed at the optimum and its two neighbours, then, where the mean over
seeds puts the optimum on an edge, rates beyond it with every seed.

Every point writes ``points/<id>/result.json`` atomically when it ends, so a
sweep started again skips finished points; an interrupted point resumes from
its checkpoint (``train.checkpoint_every``) in ``points/<id>/run``. Checkpoints
of finished points are deleted (their metrics stay).

``parallel=1`` runs the units one after another in this process with every
core; ``parallel=N>1`` runs N worker processes, each pinned to one core (which
makes XLA:CPU single-threaded and leaves every result bit-identical). On the project's 2-core machine two single-threaded processes
trained GPTs of width 32 to 256 at 1.66x, 1.72x, 1.38x and 1.18x the throughput
of one two-threaded process (``modzoo bench parallel``), hence the default 2.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time

from data.atomic import write_bytes
from zoo.sweep import grid
from zoo.sweep.grid import Point

EVENT = "@@sweep "


def _write_json(path: pathlib.Path, value) -> None:
    write_bytes(path, json.dumps(value, indent=1, allow_nan=False).encode())


def _finite_or_none(x):
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def _logged_losses(run_dir: pathlib.Path) -> tuple[float | None, float | None]:
    """The train loss of step 1 and of the last logged step, from the point's metrics (they survive resumption)."""
    path = run_dir / "metrics.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    rows = [r for r in rows if r.get("split") == "train"]
    first = next((r.get("loss") for r in rows if r.get("step") == 1), None)
    last = max(rows, key=lambda r: r["step"]).get("loss") if rows else None
    return first, last


def run_point(config, spec: str, point: Point, sweep_dir: pathlib.Path, emit) -> dict:
    """Run (or resume, or skip if finished) one point; return its result row."""
    from zoo.train import Diverged, train
    from zoo.train.loop import model_config

    axis = config.sweep.axis
    folder = sweep_dir / "points" / point.id(axis)
    done = folder / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    cfg = grid.point_config(config, point)
    steps = int(cfg.train.steps)
    quarter = max(steps // 4, 1)
    emit({"event": "start", "id": point.id(axis), "value": point.value})

    def on_log(step, loss):
        if step % quarter == 0 and step < steps:
            emit({"event": "log", "id": point.id(axis), "step": step, "steps": steps, "loss": loss})

    t0 = time.perf_counter()
    try:
        out = train(cfg, folder / "run", quiet=True, on_log=on_log)
        diverged_at = None
    except Diverged as e:
        out, diverged_at = {"eval": {}, "step": e.step}, e.step
    first, final = _logged_losses(folder / "run")
    val = out["eval"].get("loss")
    diverged = diverged_at is not None or any(
        x is None or not math.isfinite(x) or (first is not None and x > first) for x in (final, val))
    mc = model_config(cfg)
    per_example = getattr(mc, "context", None)  # tokens per example of a language model
    row = {
        "optimizer": point.optimizer, "axis": axis, "value": point.value,
        "width": getattr(mc, "width", None), "depth": getattr(mc, "depth", None),
        "learning_rate": point.learning_rate, "lr_exponent": point.exponent, "seed": point.seed,
        "steps": out["step"],
        "examples_seen": out["step"] * int(cfg.train.batch_size) * (per_example or 1),
        "unit": "tokens" if per_example else "images",
        "first_loss": _finite_or_none(first), "final_train_loss": _finite_or_none(final),
        "val_loss": _finite_or_none(val), "val_accuracy": _finite_or_none(out["eval"].get("accuracy")),
        "diverged": diverged, "diverged_at_step": diverged_at,
        "seconds": round(time.perf_counter() - t0, 2),
        "seconds_overhead": round(_overhead(out), 2),
        **{f"norm_{k}": _finite_or_none(v) for k, v in out.get("norms", {}).items()},
        "command": grid.command(spec, axis, point, f"runs/{sweep_dir.name}/{point.id(axis)}"),
    }
    _write_json(done, row)
    shutil.rmtree(folder / "run" / "checkpoints", ignore_errors=True)
    emit({"event": "done", **{k: row[k] for k in ("optimizer", "value", "learning_rate", "seed", "val_loss",
                                                    "final_train_loss", "diverged", "seconds")},
          "id": point.id(axis)})
    return row


def _overhead(out: dict) -> float:
    """Setup plus compilation: time before the first step, plus the first step beyond a typical one."""
    if "seconds_first_step" not in out:
        return out.get("seconds_setup", 0.0)
    loop = out["seconds"] - out["seconds_setup"] - out["seconds_eval"] - out["seconds_first_step"]
    typical = loop / max(out["step"] - 1, 1)
    return out["seconds_setup"] + max(out["seconds_first_step"] - typical, 0.0)


def run_unit(config, spec: str, optimizer: str, value: int, sweep_dir: pathlib.Path, emit) -> list[dict]:
    """All points of one optimizer at one size (module docstring)."""
    s = config.sweep
    lo, hi = s.rates[optimizer]
    seeds = [int(x) for x in s.seeds]
    rows, losses = [], {}

    def run(exponent, seed):
        row = run_point(config, spec, Point(optimizer, int(value), int(exponent), seed), sweep_dir, emit)
        rows.append(row)
        loss = math.inf if row["diverged"] or row["val_loss"] is None else row["val_loss"]
        losses.setdefault(exponent, []).append(loss)

    for e in range(int(lo), int(hi) + 1):
        run(e, seeds[0])
    for _ in range(int(s.extend)):
        e = grid.next_extension(sorted(losses), grid.best_exponent(losses))
        if e is None:
            break
        run(e, seeds[0])
    best = grid.best_exponent({e: v[:1] for e, v in losses.items()})
    if best is not None:
        for seed in seeds[1:]:
            for e in (best - 1, best, best + 1):
                if e in losses:
                    run(e, seed)
    for _ in range(int(s.extend) if len(seeds) > 1 else 0):
        # The mean over seeds can move the optimum onto the grid's edge: extend there with every seed.
        e = grid.next_extension(sorted(losses), grid.best_exponent(losses))
        if e is None:
            break
        for seed in seeds:
            run(e, seed)
    return rows


def units(config) -> list[tuple[str, int]]:
    """(optimizer, size) pairs, largest sizes first (the longest units start first)."""
    s = config.sweep
    return [(o, int(v)) for v in sorted(s.sizes, reverse=True) for o in s.rates]


class Progress:
    """Prints one line per finished point (and per quarter of a point), with the time left."""

    def __init__(self, config, parallel: int):
        s = config.sweep
        per_unit = {o: (hi - lo + 1) + 3 * (len(s.seeds) - 1) for o, (lo, hi) in s.rates.items()}
        self.expected = {(o, int(v)): per_unit[o] for o in s.rates for v in s.sizes}
        self.done: dict[tuple[str, int], list[float]] = {}
        self.parallel, self.lock, self.t0 = parallel, threading.Lock(), time.perf_counter()

    def time_left(self) -> float:
        by_size: dict[int, list[float]] = {}
        for (_, v), secs in self.done.items():
            by_size.setdefault(v, []).extend(secs)
        everything = [x for xs in by_size.values() for x in xs]
        fallback = max(everything) if everything else 0.0
        left = 0.0
        for (o, v), n in self.expected.items():
            remaining = max(n - len(self.done.get((o, v), [])), 0)
            known = by_size.get(v)
            left += remaining * (sum(known) / len(known) if known else fallback)
        return left / self.parallel

    def __call__(self, event: dict) -> None:
        with self.lock:
            if event["event"] == "log":
                print(f"  {event['id']}: step {event['step']}/{event['steps']} loss {event['loss']:.3f}", flush=True)
            elif event["event"] == "done":
                self.done.setdefault((event["optimizer"], int(event["value"])), []).append(event["seconds"])
                n = sum(len(v) for v in self.done.values())
                val = "diverged" if event["diverged"] else f"val {event['val_loss']:.4f}"
                train_loss = event["final_train_loss"]
                train_text = f"train {train_loss:.4f}" if train_loss is not None else "train -"
                print(f"[{n:>3}] {event['id']}: {val}, {train_text}, {event['seconds']:.0f} s; "
                      f"elapsed {(time.perf_counter() - self.t0) / 60:.1f} min, "
                      f"about {self.time_left() / 60:.0f} min left", flush=True)


def _worker_command(spec_argv: list[str], optimizer: str, value: int, sweep_dir: pathlib.Path) -> list[str]:
    return [sys.executable, "-m", "zoo.sweep.worker", optimizer, str(value), str(sweep_dir), "--", *spec_argv]


def _run_worker(argv: list[str], core: int, emit) -> None:
    # Pinning to one core makes XLA:CPU single-threaded without changing a bit of its results (an XLA flag
    # such as --xla_cpu_multi_thread_eigen=false would change them, and then the rows' commands would not
    # reproduce them).
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    pin = (lambda: os.sched_setaffinity(0, {core})) if hasattr(os, "sched_setaffinity") else None
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            preexec_fn=pin)
    tail = []
    for line in proc.stdout:
        if line.startswith(EVENT):
            emit(json.loads(line[len(EVENT):]))
        else:
            tail = (tail + [line.rstrip()])[-20:]
    if proc.wait() != 0:
        raise RuntimeError(f"sweep worker {' '.join(argv[3:5])} failed (exit {proc.returncode}):\n" + "\n".join(tail))


def sweep(config, spec_argv: list[str], spec: str, sweep_dir: str | pathlib.Path, *, parallel: int = 2) -> dict:
    """Run every unit of ``config``'s sweep into ``sweep_dir``, then write the report; return its figures.

    ``spec_argv`` (``["--config", FILE[:ARG], "--config.a=b", ...]``) rebuilds the
    config in worker processes; ``spec`` is the same as one string for the
    reproducing commands.
    """
    from zoo.sweep import report
    from zoo.train.loop import datasets, model_config

    grid.check(config)
    sweep_dir = pathlib.Path(sweep_dir)
    (sweep_dir / "points").mkdir(parents=True, exist_ok=True)
    work = units(config)
    first = grid.point_config(config, Point(work[0][0], work[0][1], 0, 0))
    datasets(first, model_config(first))  # prepare the data once, before workers race to do it
    progress = Progress(config, max(parallel, 1))
    t0 = time.perf_counter()
    print(f"sweep {spec}: {len(work)} units ({', '.join(config.sweep.rates)} x {config.sweep.axis} "
          f"{list(config.sweep.sizes)}), parallel {parallel}, into {sweep_dir}", flush=True)

    def finished_unit():
        with progress.lock:
            report.write_all(config, sweep_dir)

    if parallel <= 1:
        for optimizer, value in work:
            run_unit(config, spec, optimizer, value, sweep_dir, progress)
            finished_unit()
    else:
        slots = list(range(parallel))
        slot_lock = threading.Lock()

        def job(unit):
            with slot_lock:
                core = slots.pop(0)
            try:
                _run_worker(_worker_command(spec_argv, unit[0], unit[1], sweep_dir), core % (os.cpu_count() or 1),
                            progress)
                finished_unit()
            finally:
                with slot_lock:
                    slots.append(core)

        with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
            for f in [pool.submit(job, u) for u in work]:
                f.result()
    wall = time.perf_counter() - t0
    ran = sum(x for xs in progress.done.values() for x in xs)
    with open(sweep_dir / "sittings.jsonl", "a") as f:  # a sweep may take several sittings: the report sums them
        f.write(json.dumps({"wall_seconds": round(wall, 2), "ran_seconds": round(ran, 2), "parallel": parallel}) + "\n")
    figures = report.write_all(config, sweep_dir)
    print(report.overhead_line(figures), flush=True)
    print(f"wrote {sweep_dir / 'results.csv'}, sweep.png, size.png and summary.md", flush=True)
    return figures
