"""The ``modzoo`` command: list the catalog, run the coord check, benchmarks and training.

Each subcommand is a thin wrapper over a function that tests and sweeps call
directly. Bad input ends in one line on stderr, ``modzoo COMMAND: what is
wrong; what to do``, and a nonzero exit status: 2 for a bad command line, 1
for anything else refused (a config, data file, checkpoint or workdir), 3 for
a diverged run and 75 for a preempted one (a run or a sweep). Output piped
into a reader that stops early (``modzoo list | head -1``) ends the command
silently with 141, the status a shell reports for a program killed by
SIGPIPE (128 + 13). An error that is not about the
input (a bug) shows its traceback; ``--debug`` anywhere on the command line,
or ``MODZOO_DEBUG=1``, shows the traceback of every error.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys

from zoo.exits import CLOSED_STDOUT_EXIT, DIVERGED_EXIT, PREEMPTED_EXIT, silence_stdout


class UsageError(SystemExit):
    """A bad command line: :func:`main` prints its one-line message (prefixed ``modzoo COMMAND:``) on stderr
    and the exit status is 2, as for argparse's own errors."""

    def __init__(self, message: str):
        super().__init__(message)
        self.code = 2


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--override {pair!r}: expected KEY=VALUE, e.g. --override depth=4")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _list(args) -> None:
    from zoo.summary import catalog

    from zoo import pretrained

    shipped = pretrained.catalog()
    rows = catalog(args.pattern)
    print(f"{'name':<18}{'family':<8}{'width':>7}{'depth':>7}{'params':>14}  pretrained")
    for r in rows:
        mark = ", ".join(n for n, e in shipped.items() if e["model"] == r["name"])
        print(f"{r['name']:<18}{r['family']:<8}{r['width']:>7}{r['depth']:>7}{r['params']:>14,}  {mark}")
    for name, e in shipped.items():
        print(f"pretrained {name}: {e['model']} {e['overrides']}, {e['metric']}; made by: {e['command']}")


def _coord_check(args) -> None:
    from zoo.coord_check import coord_check, plot, spread

    widths = [int(w) for w in args.widths.split(",")]
    results = coord_check(args.model, widths, batch_size=args.batch_size, seed=args.seed,
                          **_overrides(args.override))
    plot({f"{args.model} at init": results}, args.out)
    for layer, ratio in spread(results).items():
        print(f"{layer:<16} max/min RMS across widths {ratio:.3f}")
    print(f"wrote {args.out}")


def _define_flags(argv: list[str]):
    from absl import flags
    from ml_collections import config_flags

    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "experiment config file, e.g. configs/gpt_shakespeare.py",
                                    flag_values=fv, sys_argv=["modzoo"] + argv)
    flags.DEFINE_string("workdir", None, "run directory (checkpoints, metrics)", flag_values=fv)
    flags.DEFINE_string("init_from", None, "pretrained name, .msgpack file or run workdir", flag_values=fv)
    flags.DEFINE_string("name", None, "pretrained entry name (export)", flag_values=fv)
    fv(["modzoo"] + argv)
    return fv


def _flag_error(argv: list[str], error: Exception) -> str:
    """One line naming the bad ``--config`` flag and what to do instead."""
    raw = str(error.args[0] if error.args else error)
    if "Error whilst parsing config file" in raw:  # the config file raised: ml_collections embeds the traceback
        last = raw.strip().splitlines()[-1]
        name, sep, text = last.partition(": ")
        return f"--config {_spec_argv(argv)[1]}: {text if sep and name.isidentifier() else last}"
    message = raw.encode().decode("unicode_escape")
    message = " ".join(message.replace("'", "").replace("\\", "").split())
    bad = next((a for a in argv if a.startswith("--config.") and a.split("=")[0].split(".")[-1] in message), None)
    bad = bad or next((a for a in argv if a.startswith("--config.")), None)
    if bad is None:
        return message
    key = bad.split("=")[0][len("--config."):]
    section, _, field = key.rpartition(".")
    try:
        base = _define_flags([a for a in argv if not a.startswith("--config.")]).config
        known = base.get(section) if section else base
    except Exception:  # the config file itself is broken: report the original error
        known = None
    message = message.removeprefix(f"flag {bad}: ")
    if isinstance(known, dict) or hasattr(known, "keys"):
        if field not in known.keys():
            what = f"model {base.model.name!r}" if section == "model" else f"section {section or 'config'!r}"
            return (f"unknown field {key!r} in --config.{key}; {what} has: "
                    f"{', '.join(sorted(known.keys()))}")
        if hasattr(known, "get_type"):
            example = "" if known[field] is None else f", e.g. --config.{key}={known[field]}"
            return f"bad value in {bad}: {message}; {key} must be of type {known.get_type(field).__name__}{example}"
    return f"bad value in {bad}: {message}"


def _run_flags(argv: list[str], *, workdir_required: bool):
    """Parse ``--config FILE[:ARG] --config.a.b=v ... --workdir DIR`` the ml_collections way.

    A config file may import modules of the working directory (a user's own
    models, registered on import), as under ``python -m``.
    """
    from absl import flags

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    spec = _spec_argv(argv)
    if not spec:
        raise UsageError("--config is required, e.g. --config configs/gpt_shakespeare.py")
    path = spec[1].split(":", 1)[0]
    if not os.path.isfile(path):
        raise UsageError(f"config file {path} not found (from {os.getcwd()}); give an experiment file, e.g. "
                         "--config configs/gpt_shakespeare.py")
    try:
        fv = _define_flags(argv)
    except (flags.Error, AttributeError, KeyError, ValueError, TypeError) as e:
        raise UsageError(_flag_error(argv, e)) from None
    if workdir_required and not fv.workdir:
        raise UsageError("--workdir is required, e.g. --workdir runs/gpt_shakespeare")
    return fv


def load_config(argv: list[str]):
    """The config of ``--config FILE[:ARG] [--config.a.b=v ...]`` (:class:`UsageError` on a bad flag)."""
    return _run_flags(argv, workdir_required=False).config


def _sweep(argv) -> None:
    """``modzoo sweep``: exit statuses as ``modzoo train``'s (75: stopped by a signal, rerun to resume)."""
    from zoo.sweep import sweep
    from zoo.sweep.runner import Stopped

    parallel, rest, i = 2, [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--parallel" or a.startswith("--parallel="):
            value = a.split("=", 1)[1] if "=" in a else (argv[i + 1] if i + 1 < len(argv) else "")
            i += 1 if "=" in a else 2
            if not value.isdigit() or int(value) < 1:
                raise UsageError(f"--parallel takes a positive number of processes, got {value!r}")
            parallel = int(value)
            continue
        rest.append(a)
        i += 1
    fv = _run_flags(rest, workdir_required=True)
    spec_argv = _spec_argv(rest)
    try:
        sweep(fv.config, spec_argv, " ".join(spec_argv[1:]), fv.workdir, parallel=parallel)
    except Stopped as e:
        print(f"modzoo sweep: {e}", file=sys.stderr)
        raise SystemExit(PREEMPTED_EXIT) from None


def _spec_argv(argv: list[str]) -> list[str]:
    """``["--config", FILE[:ARG], "--config.a=b", ...]`` from a command line (workdir and the rest dropped)."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--config":
            out[:0] = ["--config", argv[i + 1]]
            i += 2
            continue
        if a.startswith("--config="):
            out[:0] = ["--config", a.split("=", 1)[1]]
        elif a.startswith("--config."):
            out.append(a)
        i += 1
    return out


def _train(argv) -> None:
    """``modzoo train``: 0 done, 1 bad input or workdir in use, 2 bad command line, 3 diverged, 75 preempted
    (rerun to resume)."""
    from zoo.train import Diverged, Preempted, train

    fv = _run_flags(argv, workdir_required=True)
    config = fv.config
    if fv.init_from:
        config.init_from = fv.init_from
    try:
        train(config, fv.workdir)
    except (Diverged, Preempted) as e:
        print(f"modzoo train: {e}", file=sys.stderr)
        raise SystemExit(DIVERGED_EXIT if isinstance(e, Diverged) else PREEMPTED_EXIT) from None


def _eval(argv) -> None:
    from zoo.train import evaluate

    fv = _run_flags(argv, workdir_required=False)
    source = fv.init_from or fv.workdir
    if not source:
        raise UsageError("give --workdir DIR (a run) or --init_from NAME_OR_PATH")
    print(json.dumps(evaluate(fv.config, source)))


def _export(argv) -> None:
    """Evaluate a finished run and ship its weights as pretrained entry ``--name``."""
    from zoo import pretrained
    from zoo.train import evaluate
    from zoo.train.datasets import saved_tokenizer
    from zoo.train.loop import param_target

    fv = _run_flags(argv, workdir_required=True)
    if not fv.name:
        raise UsageError("--name is required, e.g. --name gpt-shakespeare")
    metrics = evaluate(fv.config, fv.workdir)
    params = pretrained.load_params(fv.workdir, param_target(fv.config))
    fields = {k: v for k, v in fv.config.model.to_dict().items() if v is not None}  # unset: the preset's value
    train_args = [a for i, a in enumerate(argv)
                  if not a.startswith("--name") and not (i and argv[i - 1] == "--name")]
    config_file = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None) or \
        argv[argv.index("--config") + 1]
    path = pretrained.export(params, fv.name, model=fields.pop("name"), overrides=fields,
                             config=config_file, command="modzoo train " + " ".join(train_args),
                             metric={k: round(v, 4) for k, v in metrics.items()},
                             tokenizer=saved_tokenizer(fv.workdir))
    print(f"wrote {path} ({path.stat().st_size:,} bytes); evaluation {metrics}")


def _sample(args) -> None:
    from zoo import pretrained
    from zoo.models.base import modality_of
    from zoo.sample import generate

    if args.workdir:
        from zoo.train.loop import trained_model

        if not args.config:
            raise UsageError("--workdir needs the run's --config FILE[:ARG]")
        model = trained_model(load_config(["--config", args.config]), args.workdir)
    else:
        model = pretrained.load(args.pretrained)
    if modality_of(model.config) != "text":
        raise ValueError(f"{type(model).__name__} is not a language model (modality "
                         f"{model.config.modality!r}); sampling needs modality 'text'")
    from zoo.train.datasets import load_saved_tokenizer

    text = generate(model, args.prompt, max_new_tokens=args.tokens, temperature=args.temperature,
                    top_k=args.top_k, seed=args.seed,  # a bad --temperature, --top-k or --tokens: ValueError
                    tokenizer=load_saved_tokenizer(args.workdir or args.pretrained))  # None: the model reads bytes
    print(args.prompt + text.decode("utf-8", errors="replace"))


RUN_COMMANDS = {"train": _train, "eval": _eval, "export": _export, "sweep": _sweep}


def _bench(args) -> None:
    if args.what == "optim":
        from zoo.benchmarks import optimizer_step

        optimizer_step.run(args.preset or "gpt-small", repeats=args.repeats or 5)
    elif args.what == "data":
        from zoo.benchmarks import input_pipeline

        input_pipeline.run(repeats=args.repeats or 5)
    elif args.what == "compile":
        from zoo.benchmarks import compile_time

        compile_time.run(depths=(1, 2) if args.quick else (2, 4, 8, 16, 32),
                         repeats=1 if args.quick else args.repeats or 5)
    elif args.what == "parallel":
        from zoo.benchmarks import sweep_parallel

        sweep_parallel.run()
    elif args.what == "loop":
        from zoo.benchmarks import train_loop

        train_loop.run(steps=60 if args.quick else 600, repeats=3 if args.quick else 20)
    elif args.what == "sample":
        from zoo.benchmarks import sampling

        sampling.run(lengths=(20,) if args.quick else (100, 500), repeats=1 if args.quick else args.repeats or 5)
    else:
        from zoo.benchmarks import train_step

        if args.preset:
            raise UsageError("--preset is for bench optim; bench train runs the baby GPT, "
                             "the main job and (on GPU) gpt-small: drop --preset")
        train_step.run(repeats=1 if args.quick else args.repeats or 15, quick=args.quick)


OWN_PACKAGES = ("zoo", "optim", "data", "configs", "examples")
"""Where modzoo's own code lives: a ValueError, KeyError or OSError raised there is refused input (its message
says what and how to fix it); raised inside a library modzoo calls, it is a bug and keeps its traceback."""


def _refused_input(e: Exception) -> bool:
    """Whether ``e`` reports bad input (one line, exit 1) rather than a bug (a traceback)."""
    from zoo.train.checkpoint import CheckpointError
    from zoo.train.workdir_lock import WorkdirLocked

    if isinstance(e, (CheckpointError, WorkdirLocked)):
        return True
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "") if tb is not None else ""
    return isinstance(e, (ValueError, KeyError, OSError)) and module.split(".")[0] in OWN_PACKAGES


def _one_line(e: Exception) -> str:
    """``e``'s message on one line (a KeyError's without the quotes its ``str`` adds)."""
    text = e.args[0] if isinstance(e, KeyError) and len(e.args) == 1 else e
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> None:
    """``modzoo COMMAND ...``; bad input exits with one line on stderr (see the module docstring)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("MODZOO_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    prefix = f"modzoo {argv[0]}" if argv and not argv[0].startswith("-") else "modzoo"
    try:
        _dispatch(argv)
        sys.stdout.flush()  # output still buffered meets a closed pipe here, not at exit
    except BrokenPipeError:
        silence_stdout()
        raise SystemExit(CLOSED_STDOUT_EXIT) from None
    except UsageError as e:
        print(f"{prefix}: {e}", file=sys.stderr)
        raise
    except Exception as e:
        if debug or not _refused_input(e):
            raise
        raise SystemExit(f"{prefix}: {_one_line(e)}") from None


def _dispatch(argv: list[str]) -> None:
    if argv and argv[0] in RUN_COMMANDS:
        RUN_COMMANDS[argv[0]](argv[1:])
        return
    parser = argparse.ArgumentParser(prog="modzoo", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of any error (anywhere on the line; or MODZOO_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="the model catalog")
    p.add_argument("pattern", nargs="?", default=None, help="glob, e.g. 'gpt-*'")
    p.set_defaults(func=_list)

    for name, what in [("train", "train or resume a run: --config FILE[:ARG] --workdir DIR [--config.a.b=v]"),
                       ("eval", "evaluate a run or pretrained model: --config FILE (--workdir DIR | --init_from X)"),
                       ("export", "ship a run's weights: --config FILE --workdir DIR --name NAME"),
                       ("sweep", "learning-rate sweep across width or depth: --config configs/sweeps/NAME.py "
                                 "--workdir DIR [--parallel N]")]:
        sub.add_parser(name, help=what)

    p = sub.add_parser("sample", help="generate text with a pretrained language model or a trained run's")
    p.add_argument("--pretrained", default="gpt-shakespeare")
    p.add_argument("--config", default=None, help="with --workdir: the run's config FILE[:ARG]")
    p.add_argument("--workdir", default=None, help="sample from this run's latest checkpoint")
    p.add_argument("--prompt", default="ROMEO:")
    p.add_argument("--tokens", type=int, default=300)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_sample)

    p = sub.add_parser("bench", help="benchmarks: optim, data, train, loop, parallel, sample or compile "
                                      "(medians, ratios against baselines)")
    p.add_argument("what", choices=["optim", "data", "train", "loop", "parallel", "sample", "compile"])
    p.add_argument("--preset", default=None, help="GPT preset for bench optim (default gpt-small)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats (default 15 interleaved rounds for bench train, 5 otherwise)")
    p.add_argument("--quick", action="store_true",
                   help="bench train: tiny sizes; bench sample: 20 tokens; one repeat (a smoke run)")
    p.set_defaults(func=_bench)

    p = sub.add_parser("coord-check", help="activation RMS per layer across widths, plotted to a PNG")
    p.add_argument("--model", default="gpt-tiny")
    p.add_argument("--widths", default="64,128,256,512,1024")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="coord_check.png")
    p.set_defaults(func=_coord_check)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
