"""The ``modzoo`` command: list the catalog, run the coord check, benchmarks and training.

Each subcommand is a thin wrapper over a function that tests and sweeps call
directly.
"""

from __future__ import annotations

import argparse
import ast
import json
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


def _run_flags(argv: list[str], *, workdir_required: bool):
    """Parse ``--config FILE[:ARG] --config.a.b=v ... --workdir DIR`` the ml_collections way."""
    from absl import flags
    from ml_collections import config_flags

    fv = flags.FlagValues()
    try:
        config_flags.DEFINE_config_file("config", None, "experiment config file, e.g. configs/gpt_shakespeare.py",
                                        flag_values=fv, sys_argv=["modzoo"] + argv)
        flags.DEFINE_string("workdir", None, "run directory (checkpoints, metrics)", flag_values=fv)
        flags.DEFINE_string("init_from", None, "pretrained name, .msgpack file or run workdir", flag_values=fv)
        flags.DEFINE_string("name", None, "pretrained entry name (export)", flag_values=fv)
        fv(["modzoo"] + argv)
    except (flags.Error, AttributeError, KeyError) as e:
        message = str(e.args[0] if e.args else e).encode().decode("unicode_escape")
        message = " ".join(message.replace("'", "").replace("\\", "").split())
        bad = next((a.split("=")[0] for a in argv if a.startswith("--config.")), "")
        raise SystemExit(f"modzoo: bad flag {bad}: {message}" if bad else f"modzoo: {message}") from None
    if fv.config is None:
        raise SystemExit("modzoo: --config is required, e.g. --config configs/gpt_shakespeare.py")
    if workdir_required and not fv.workdir:
        raise SystemExit("modzoo: --workdir is required, e.g. --workdir runs/gpt_shakespeare")
    return fv


def _train(argv) -> None:
    from zoo.train import train

    fv = _run_flags(argv, workdir_required=True)
    config = fv.config
    if fv.init_from:
        config.init_from = fv.init_from
    train(config, fv.workdir)


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
    from zoo.sample import generate

    model = pretrained.load(args.pretrained)
    text = generate(model, args.prompt, max_new_tokens=args.tokens, temperature=args.temperature,
                    top_k=args.top_k, seed=args.seed)
    print(args.prompt + text.decode("utf-8", errors="replace"))


RUN_COMMANDS = {"train": _train, "eval": _eval, "export": _export}


def _bench(args) -> None:
    if args.what == "optim":
        from zoo.benchmarks import optim

        optim.run(args.preset or "gpt-small", repeats=args.repeats)
    elif args.what == "data":
        from zoo.benchmarks import data

        data.run(repeats=args.repeats)
    else:
        from zoo.benchmarks import train

        presets = [args.preset] if args.preset else ["gpt-tiny", "gpt-mini", "gpt-shakespeare"]
        train.run(presets, repeats=args.repeats)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in RUN_COMMANDS:
        RUN_COMMANDS[argv[0]](argv[1:])
        return
    parser = argparse.ArgumentParser(prog="modzoo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="the model catalog")
    p.add_argument("pattern", nargs="?", default=None, help="glob, e.g. 'gpt-*'")
    p.set_defaults(func=_list)

    for name, what in [("train", "train or resume a run: --config FILE[:ARG] --workdir DIR [--config.a.b=v]"),
                       ("eval", "evaluate a run or pretrained model: --config FILE (--workdir DIR | --init_from X)"),
                       ("export", "ship a run's weights: --config FILE --workdir DIR --name NAME")]:
        sub.add_parser(name, help=what)

    p = sub.add_parser("sample", help="generate text with a pretrained GPT")
    p.add_argument("--pretrained", default="gpt-shakespeare")
    p.add_argument("--prompt", default="ROMEO:")
    p.add_argument("--tokens", type=int, default=300)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_sample)

    p = sub.add_parser("bench", help="benchmarks: optim, data or train (medians, ratios against baselines)")
    p.add_argument("what", choices=["optim", "data", "train"])
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
