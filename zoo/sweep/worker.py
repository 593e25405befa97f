"""A sweep worker process: ``python -m zoo.sweep.worker OPTIMIZER VALUE SWEEP_DIR -- --config FILE[:ARG] ...``.

Runs one unit (:func:`zoo.sweep.runner.run_unit`) and reports each event as
one ``@@sweep {json}`` line on stdout for the coordinating process.
"""

from __future__ import annotations

import json
import pathlib
import sys


def main(argv: list[str]) -> None:
    from zoo.cli import load_config
    from zoo.sweep.runner import EVENT, run_unit

    split = argv.index("--")
    optimizer, value, sweep_dir = argv[:split]
    spec_argv = argv[split + 1:]
    config = load_config(spec_argv)

    def emit(event):
        print(EVENT + json.dumps(event), flush=True)

    run_unit(config, " ".join(spec_argv[1:]), optimizer, int(value), pathlib.Path(sweep_dir), emit)


if __name__ == "__main__":
    main(sys.argv[1:])
