"""The ``modzoo`` command: list the catalog, run the coord check, benchmarks and training.

Each subcommand is a thin wrapper over a function that tests and sweeps call
directly.
"""

from __future__ import annotations

import argparse
import ast
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

    rows = catalog(args.pattern)
    print(f"{'name':<18}{'family':<8}{'width':>7}{'depth':>7}{'params':>14}")
    for r in rows:
        print(f"{r['name']:<18}{r['family']:<8}{r['width']:>7}{r['depth']:>7}{r['params']:>14,}")


def _coord_check(args) -> None:
    from zoo.coord_check import coord_check, plot, spread

    widths = [int(w) for w in args.widths.split(",")]
    results = coord_check(args.model, widths, batch_size=args.batch_size, seed=args.seed,
                          **_overrides(args.override))
    plot({f"{args.model} at init": results}, args.out)
    for layer, ratio in spread(results).items():
        print(f"{layer:<16} max/min RMS across widths {ratio:.3f}")
    print(f"wrote {args.out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="modzoo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="the model catalog")
    p.add_argument("pattern", nargs="?", default=None, help="glob, e.g. 'gpt-*'")
    p.set_defaults(func=_list)

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
