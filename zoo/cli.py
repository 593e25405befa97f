"""The ``modzoo`` command: list the catalog, run the coord check, benchmarks and training.

Each subcommand is a thin wrapper over a function that tests and sweeps call
directly.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--override {pair!r}: expected KEY=VALUE, e.g. --override depth=4")
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
    """One line naming the bad ``--config.`` flag and what to do instead."""
    message = str(error.args[0] if error.args else error).encode().decode("unicode_escape")
    message = " ".join(message.replace("'", "").replace("\\", "").split())
    bad = next((a for a in argv if a.startswith("--config.") and a.split("=")[0].split(".")[-1] in message), None)
    bad = bad or next((a for a in argv if a.startswith("--config.")), None)
    if bad is None:
        return f"modzoo: {message}"
    key = bad.split("=")[0][len("--config."):]
    section, _, field = key.rpartition(".")
    try:
        base = _define_flags([a for a in argv if not a.startswith("--config.")]).config
        known = base.get(section) if section else base
    except Exception:  # the config file itself is broken: report the original error
        known = None
    if isinstance(known, dict) or hasattr(known, "keys"):
        if field not in known.keys():
            what = f"model {base.model.name!r}" if section == "model" else f"section {section or 'config'!r}"
            return (f"modzoo: unknown field {key!r} in --config.{key}; {what} has: "
                    f"{', '.join(sorted(known.keys()))}")
    return f"modzoo: bad value in {bad}: {message}"


def _run_flags(argv: list[str], *, workdir_required: bool):
    """Parse ``--config FILE[:ARG] --config.a.b=v ... --workdir DIR`` the ml_collections way.

    A config file may import modules of the working directory (a user's own
    models, registered on import), as under ``python -m``.
    """
    from absl import flags

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        fv = _define_flags(argv)
    except (flags.Error, AttributeError, KeyError, ValueError, TypeError) as e:
        raise SystemExit(_flag_error(argv, e)) from None
    if fv.config is None:
        raise SystemExit("modzoo: --config is required, e.g. --config configs/gpt_shakespeare.py")
    if workdir_required and not fv.workdir:
        raise SystemExit("modzoo: --workdir is required, e.g. --workdir runs/gpt_shakespeare")
    return fv


def load_config(argv: list[str]):
    """The config of ``--config FILE[:ARG] [--config.a.b=v ...]`` (one-line SystemExit on a bad flag)."""
    return _run_flags(argv, workdir_required=False).config


def _sweep(argv) -> None:
    from zoo.sweep import sweep

    parallel, rest, i = 2, [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--parallel" or a.startswith("--parallel="):
            value = a.split("=", 1)[1] if "=" in a else (argv[i + 1] if i + 1 < len(argv) else "")
            i += 1 if "=" in a else 2
            if not value.isdigit() or int(value) < 1:
                raise SystemExit(f"modzoo sweep: --parallel takes a positive number of processes, got {value!r}")
            parallel = int(value)
            continue
        rest.append(a)
        i += 1
    fv = _run_flags(rest, workdir_required=True)
    spec_argv = _spec_argv(rest)
    try:
        sweep(fv.config, spec_argv, " ".join(spec_argv[1:]), fv.workdir, parallel=parallel)
    except ValueError as e:
        raise SystemExit(f"modzoo sweep: {e}") from None


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


DIVERGED_EXIT = 3
"""Exit status of ``modzoo train`` when the loss became non-finite."""


def _train(argv) -> None:
    from zoo.train import Diverged, train

    fv = _run_flags(argv, workdir_required=True)
    config = fv.config
    if fv.init_from:
        config.init_from = fv.init_from
    try:
        train(config, fv.workdir)
    except Diverged as e:
        print(f"modzoo train: {e}", file=sys.stderr)
        raise SystemExit(DIVERGED_EXIT) from None


def _eval(argv) -> None:
    from zoo.train import evaluate

    fv = _run_flags(argv, workdir_required=False)
    source = fv.init_from or fv.workdir
    if not source:
        raise SystemExit("modzoo eval: give --workdir DIR (a run) or --init_from NAME_OR_PATH")
    print(json.dumps(evaluate(fv.config, source)))


def _export(argv) -> None:
    """Evaluate a finished run and ship its weights as pretrained entry ``--name``."""
    from zoo import pretrained
    from zoo.train import evaluate
    from zoo.train.loop import param_target

    fv = _run_flags(argv, workdir_required=True)
    if not fv.name:
        raise SystemExit("modzoo export: --name is required")
    metrics = evaluate(fv.config, fv.workdir)
    params = pretrained.load_params(fv.workdir, param_target(fv.config))
    fields = fv.config.model.to_dict()
    train_args = [a for i, a in enumerate(argv)
                  if not a.startswith("--name") and not (i and argv[i - 1] == "--name")]
    config_file = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None) or \
        argv[argv.index("--config") + 1]
    path = pretrained.export(params, fv.name, model=fields.pop("name"), overrides=fields,
                             config=config_file, command="modzoo train " + " ".join(train_args),
                             metric={k: round(v, 4) for k, v in metrics.items()})
    print(f"wrote {path} ({path.stat().st_size:,} bytes); evaluation {metrics}")


def _sample(args) -> None:
    from zoo import pretrained
    from zoo.models.base import modality_of
    from zoo.sample import generate

    if args.workdir:
        from zoo.train.loop import trained_model

        if not args.config:
            raise SystemExit("modzoo sample: --workdir needs the run's --config FILE[:ARG]")
        model = trained_model(load_config(["--config", args.config]), args.workdir)
    else:
        model = pretrained.load(args.pretrained)
    if modality_of(model.config) != "text":
        raise SystemExit(f"modzoo sample: {type(model).__name__} is not a language model (modality "
                         f"{model.config.modality!r}); sampling needs modality 'text'")
    text = generate(model, args.prompt, max_new_tokens=args.tokens, temperature=args.temperature,
                    top_k=args.top_k, seed=args.seed)
    print(args.prompt + text.decode("utf-8", errors="replace"))


RUN_COMMANDS = {"train": _train, "eval": _eval, "export": _export, "sweep": _sweep}


def _bench(args) -> None:
    if args.what == "optim":
        from zoo.benchmarks import optimizer_step

        optimizer_step.run(args.preset or "gpt-small", repeats=args.repeats)
    elif args.what == "data":
        from zoo.benchmarks import input_pipeline

        input_pipeline.run(repeats=args.repeats)
    elif args.what == "parallel":
        from zoo.benchmarks import sweep_parallel

        sweep_parallel.run()
    else:
        from zoo.benchmarks import train_step

        presets = [args.preset] if args.preset else ["gpt-tiny", "gpt-mini", "gpt-shakespeare"]
        train_step.run(presets, repeats=args.repeats)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in RUN_COMMANDS:
        from data import ChecksumError, MissingDataError

        try:
            RUN_COMMANDS[argv[0]](argv[1:])
        except (ChecksumError, MissingDataError) as e:  # the line names the file and what to do
            raise SystemExit(f"modzoo {argv[0]}: {e}") from None
        return
    parser = argparse.ArgumentParser(prog="modzoo", description=__doc__.splitlines()[0])
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

    p = sub.add_parser("bench", help="benchmarks: optim, data, train or parallel (medians, ratios against baselines)")
    p.add_argument("what", choices=["optim", "data", "train", "parallel"])
    p.add_argument("--preset", default=None, help="GPT preset (default: optim gpt-small, train the small ones)")
    p.add_argument("--repeats", type=int, default=5)
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
