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
of finished points are deleted (their metrics stay). SIGTERM or SIGINT stops
the sweep as it stops a run: every running point finishes its step and saves
its checkpoint, no new point starts, and :class:`Stopped` names what was
saved; a closed stdout (``| head``) stops it the same way, as SIGPIPE. A
second signal aborts at once (with workers: a second SIGINT kills them; after
a second SIGTERM, which ends this process, they still finish their step).

``parallel=1`` runs the units one after another in this process with every
core; ``parallel=N>1`` runs N worker processes (:mod:`zoo.sweep.workers`), each
pinned to one core (which makes XLA:CPU single-threaded and leaves every result
bit-identical). On the project's 2-core machine two single-threaded processes
trained GPTs of width 32 to 256 at 1.66x, 1.72x, 1.38x and 1.18x the throughput
of one two-threaded process (``modzoo bench parallel``), hence the default 2.
"""

from __future__ import annotations

import json
import math
import pathlib
import shutil
import signal
import threading
import time

from data.atomic import write_bytes
from zoo.exits import silence_stdout
from zoo.sweep import grid, workers
from zoo.sweep.grid import Point


class Stopped(RuntimeError):
    """A signal (or a closed stdout) stopped the sweep after the running points saved their checkpoints; the
    same command resumes it."""

    def __init__(self, signum: int, points: dict[str, int]):
        self.signum, self.points = signum, dict(points)
        saved = ("after saving the checkpoints of " + ", ".join(f"{k} at step {v}" for k, v in points.items())
                 if points else "between points")
        super().__init__(f"stopped by {signal.Signals(signum).name} {saved}; run the same command again to resume")


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


def run_unit(config, spec: str, optimizer: str, value: int, sweep_dir: pathlib.Path, emit, requests) -> list[dict]:
    """All points of one optimizer at one size (module docstring); on a stop request (``requests``, the
    process's :func:`~zoo.train.preemption.preemption_requests`, which the runs share) it emits a ``stopped``
    event and raises :class:`~zoo.train.Preempted` (a point stopped after a step) or :class:`Stopped`."""
    from zoo.train import Preempted

    s = config.sweep
    lo, hi = s.rates[optimizer]
    seeds = [int(x) for x in s.seeds]
    rows, losses = [], {}

    def run(exponent, seed):
        point = Point(optimizer, int(value), int(exponent), seed)
        if requests.signum is not None:
            emit({"event": "stopped", "signum": requests.signum})
            raise Stopped(requests.signum, {})
        try:
            row = run_point(config, spec, point, sweep_dir, emit)
        except Preempted as e:
            emit({"event": "stopped", "signum": requests.signum, "id": point.id(s.axis), "step": e.step})
            raise
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
    """Prints one line per finished point (and per quarter of a point), with the time left; records the points
    that stopped on request (``stopped``: id -> the step whose checkpoint was saved). A worker's stop (a signal
    to it alone) stops the whole sweep, and so does a closed stdout (as SIGPIPE), through ``requests``."""

    def __init__(self, config, parallel: int, requests):
        s = config.sweep
        per_unit = {o: (hi - lo + 1) + 3 * (len(s.seeds) - 1) for o, (lo, hi) in s.rates.items()}
        self.expected = {(o, int(v)): per_unit[o] for o in s.rates for v in s.sizes}
        self.done: dict[tuple[str, int], list[float]] = {}
        self.stopped: dict[str, int] = {}
        self.parallel, self.lock, self.t0, self.requests = parallel, threading.Lock(), time.perf_counter(), requests

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

    def say(self, line: str) -> None:
        """Print ``line``; if stdout's reader has gone, print nothing more and stop the sweep."""
        try:
            print(line, flush=True)
        except BrokenPipeError:
            silence_stdout()
            self.requests.request(signal.SIGPIPE)

    def __call__(self, event: dict) -> None:
        with self.lock:
            if event["event"] == "log":
                self.say(f"  {event['id']}: step {event['step']}/{event['steps']} loss {event['loss']:.3f}")
            elif event["event"] == "stopped":
                self.requests.request(event["signum"])
                if "id" in event:
                    self.stopped[event["id"]] = event["step"]
                    self.say(f"  {event['id']}: stopped after step {event['step']}, its checkpoint saved")
            elif event["event"] == "done":
                self.done.setdefault((event["optimizer"], int(event["value"])), []).append(event["seconds"])
                n = sum(len(v) for v in self.done.values())
                val = "diverged" if event["diverged"] else f"val {event['val_loss']:.4f}"
                train_loss = event["final_train_loss"]
                train_text = f"train {train_loss:.4f}" if train_loss is not None else "train -"
                self.say(f"[{n:>3}] {event['id']}: {val}, {train_text}, {event['seconds']:.0f} s; "
                         f"elapsed {(time.perf_counter() - self.t0) / 60:.1f} min, "
                         f"about {self.time_left() / 60:.0f} min left")


def check_points(config) -> None:
    """Refuse, in one line, a sweep whose points cannot run, before anything is written: the ``train``
    settings, the model at every size, every optimizer with its settings, and the mesh and batch sizes
    (what :func:`zoo.train.train` refuses before its first step)."""
    from zoo.train.loop import check_train_settings, model_config, optimizer_settings
    from zoo.train.mesh import check_batch, make_mesh

    s = config.sweep
    for optimizer, value in units(config):
        point = grid.point_config(config, Point(optimizer, value, int(s.rates[optimizer][0]), int(s.seeds[0])))
        check_train_settings(point)
        model_config(point)
        optimizer_settings(point)
    mesh = make_mesh(config.mesh.to_dict())
    for field in ("batch_size", "eval_batch_size"):
        check_batch(mesh, config.train[field], f"train.{field}")


def sweep(config, spec_argv: list[str], spec: str, sweep_dir: str | pathlib.Path, *, parallel: int = 2) -> dict:
    """Run every unit of ``config``'s sweep into ``sweep_dir``, then write the report; return its figures.

    ``spec_argv`` (``["--config", FILE[:ARG], "--config.a=b", ...]``) rebuilds the
    config in worker processes; ``spec`` is the same as one string for the
    reproducing commands. A config that cannot run is refused before
    ``sweep_dir`` is created; a stop request raises :class:`Stopped` (or,
    for a closed stdout, BrokenPipeError) once the running points have saved
    their checkpoints.
    """
    from zoo.sweep import report
    from zoo.train import Preempted
    from zoo.train.loop import check_workdir, datasets, model_config
    from zoo.train.preemption import preemption_requests

    grid.check(config)
    sweep_dir = pathlib.Path(sweep_dir)
    check_workdir(sweep_dir)
    check_points(config)
    work = units(config)
    first = grid.point_config(config, Point(work[0][0], work[0][1], 0, 0))
    datasets(first, model_config(first))  # prepare the data once, before workers race to do it
    (sweep_dir / "points").mkdir(parents=True, exist_ok=True)
    with preemption_requests() as requests:  # shared by the runs of this process (zoo.train.preemption)
        progress = Progress(config, max(parallel, 1), requests)
        t0 = time.perf_counter()
        progress.say(f"sweep {spec}: {len(work)} units ({', '.join(config.sweep.rates)} x {config.sweep.axis} "
                     f"{list(config.sweep.sizes)}), parallel {parallel}, into {sweep_dir}")

        def finished_unit():
            with progress.lock:
                report.write_all(config, sweep_dir)

        if parallel <= 1:
            for optimizer, value in work:
                try:
                    run_unit(config, spec, optimizer, value, sweep_dir, progress, requests)
                except (Preempted, Stopped):
                    break
                finished_unit()
        else:
            def job(live, unit, core):
                argv = workers.command(spec_argv, unit[0], unit[1], sweep_dir, core)
                if workers.run_worker(live, argv, progress):
                    finished_unit()

            workers.run_all(work, parallel, job, requests)
        wall = time.perf_counter() - t0
        ran = sum(x for xs in progress.done.values() for x in xs)
        with open(sweep_dir / "sittings.jsonl", "a") as f:  # a sweep may take several sittings: the report sums them
            f.write(json.dumps({"wall_seconds": round(wall, 2), "ran_seconds": round(ran, 2),
                                "parallel": parallel}) + "\n")
        if requests.signum == signal.SIGPIPE:
            raise BrokenPipeError("stdout was closed")
        if requests.signum is not None:
            raise Stopped(requests.signum, progress.stopped)
    figures = report.write_all(config, sweep_dir)
    progress.say(report.overhead_line(figures))
    progress.say(f"wrote {sweep_dir / 'results.csv'}, sweep.png, size.png and summary.md")
    return figures
