"""The width coord check at initialization (muP's diagnostic) and its plot command."""

import pathlib

import pytest

from zoo.coord_check import coord_check, spread

WIDTHS = [64, 256, 1024]


@pytest.fixture(scope="module")
def gpt_results():
    return coord_check("gpt-tiny", WIDTHS, depth=2, context=32, batch_size=4)


def test_gpt_block_outputs_flat_across_width(gpt_results):
    ratios = spread(gpt_results)
    blocks = [k for k in ratios if k.startswith("blocks.")]
    assert len(blocks) == 2
    for layer in blocks + ["embed"]:
        assert ratios[layer] < 2.0, (layer, ratios[layer])
    # logits do not grow with width
    assert gpt_results[1024]["rms"]["logits"] <= 1.1 * gpt_results[64]["rms"]["logits"]


def test_resmlp_block_outputs_flat_across_width():
    results = coord_check("resmlp-tiny", WIDTHS, depth=2, batch_size=8)
    ratios = spread(results)
    for layer in [k for k in ratios if k.startswith("blocks.")]:
        assert ratios[layer] < 2.0, (layer, ratios[layer])
    assert results[1024]["rms"]["logits"] <= 1.1 * results[64]["rms"]["logits"]


def test_coord_check_command_writes_png(tmp_path):
    from zoo.cli import main

    out = tmp_path / "coord.png"
    main(["coord-check", "--model", "gpt-tiny", "--widths", "32,64", "--override", "depth=1",
          "--override", "context=8", "--out", str(out)])
    data = pathlib.Path(out).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
