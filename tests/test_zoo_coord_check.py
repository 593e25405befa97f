"""The width coord check at initialization (muP's diagnostic) and its plot command."""

import pathlib

import pytest

from zoo.coord_check import coord_check, spread

WIDTHS = [32, 128, 512]
"""A 16x span, as 64..1024 is, at an eighth of the cost: a width-1024 GPT's orthogonal init alone (XLA's QR on
CPU) took about a minute of CPU. A layer off by sqrt(width) would move 4x across it, twice the bound."""
GPT = dict(depth=2, context=32, batch_size=4)


@pytest.fixture(scope="module")
def gpt_results():
    return coord_check("gpt-tiny", WIDTHS, **GPT)


def test_gpt_block_outputs_flat_across_width(gpt_results):
    ratios = spread(gpt_results)
    blocks = [k for k in ratios if k.startswith("blocks.")]
    assert len(blocks) == 2
    for layer in blocks + ["embed"]:
        assert ratios[layer] < 2.0, (layer, ratios[layer])
    # logits do not grow with width
    assert gpt_results[WIDTHS[-1]]["rms"]["logits"] <= 1.1 * gpt_results[WIDTHS[0]]["rms"]["logits"]


def test_resmlp_block_outputs_flat_across_width():
    results = coord_check("resmlp-tiny", WIDTHS, depth=2, batch_size=8)
    ratios = spread(results)
    for layer in [k for k in ratios if k.startswith("blocks.")]:
        assert ratios[layer] < 2.0, (layer, ratios[layer])
    assert results[WIDTHS[-1]]["rms"]["logits"] <= 1.1 * results[WIDTHS[0]]["rms"]["logits"]


def test_coord_check_command_writes_png(tmp_path, gpt_results):
    """The fixture's model and two of its widths: what the command computes is compiled already."""
    from zoo.cli import main

    out = tmp_path / "coord.png"
    main(["coord-check", "--model", "gpt-tiny", "--widths", f"{WIDTHS[0]},{WIDTHS[1]}",
          "--override", f"depth={GPT['depth']}", "--override", f"context={GPT['context']}",
          "--batch-size", str(GPT["batch_size"]), "--out", str(out)])
    data = pathlib.Path(out).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
