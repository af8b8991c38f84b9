"""Checks qatfold's verification of every program the tests fold against the
independent computation of zoo/measure.py."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
import torch
from torch.utils._pytree import tree_flatten

from zoo.measure import conv_quantize, example_batches, independent, removed_dequantize


def _field(chain: Any, name: str):
    return chain[name] if isinstance(chain, dict) else getattr(chain, name)


def assert_verified(original, folded, folded_chains: Iterable[Any], batches: list[tuple] | None = None):
    """Runs qatfold's verification of `original` folded into `folded` (the
    report's folded chains, as JSON dicts or FoldedConv) and checks each
    figure against the independent computation. Returns the verification."""
    from qatfold._verify import verify_fold

    folded_chains = list(folded_chains)
    chains = [(_field(c, "conv"), _field(c, "batch_norm")) for c in folded_chains
              if _field(c, "bias_dtype") == "int32" or _field(c, "requantized") is not None]
    # A fold into a float bias leaves the layer's output in float: no output
    # quantization to measure it in, so the end-to-end outputs below are
    # what measures it, and they must be there.
    float_folds = len(folded_chains) - len(chains)
    batches = batches if batches is not None else example_batches(original)
    verification = verify_fold(original, folded, chains, batches)
    assert verification.batches == len(batches)

    # Every fold whose layer output is quantized both before and after is measured.
    expected = [conv for conv, _ in chains
                if conv_quantize(original, conv) is not None
                and conv_quantize(folded, conv, through_relu=True) is not None]
    assert [c.conv for c in verification.convs] == expected
    # The split runs the un-folded program without every pair the folds removed.
    cut = tuple(name for name in (removed_dequantize(original, c.conv, c.batch_norm) for c in verification.convs)
                if name is not None)
    for measured in verification.convs:
        figures = independent(original, folded, measured.conv, measured.batch_norm, batches, cut)
        assert measured.saturation_before == pytest.approx(figures["before"])
        assert measured.saturation_after == pytest.approx(figures["after"])
        assert measured.mean_steps == pytest.approx(figures["mean"], rel=1e-5, abs=1e-9)
        assert measured.max_steps == pytest.approx(figures["max"], rel=1e-5, abs=1e-9)
        assert measured.flagged == (figures["after"] - figures["before"] > 0.005)
        split = (measured.removed_mean_steps, measured.removed_max_steps,
                 measured.unquantized_mean_steps, measured.unquantized_max_steps,
                 measured.coarser_mean_steps, measured.coarser_max_steps)
        if figures["removed"]:
            assert split == pytest.approx((figures["removed_mean"], figures["removed_max"],
                                           figures["unquantized_mean"], figures["unquantized_max"],
                                           figures["coarser_mean"], figures["coarser_max"]),
                                          rel=1e-5, abs=1e-9)
        else:
            assert split == (None,) * 6

    # End to end, per output: in steps of its dequantize, else in floats.
    by_name = {n.name: n for n in folded.graph.nodes}
    names = folded.graph_signature.user_outputs
    with torch.no_grad():
        before = [tree_flatten(original.module()(*b))[0] for b in batches]
        after = [tree_flatten(folded.module()(*b))[0] for b in batches]
    tensor_outputs = [i for i, value in enumerate(before[0]) if isinstance(value, torch.Tensor)]
    assert [output.index for output in verification.outputs] == tensor_outputs
    assert tensor_outputs or not float_folds, "a float-bias fold needs an output to be measured by"
    for i, output in enumerate(verification.outputs):
        node = by_name.get(names[i]) if i < len(names) else None
        dequantized = node is not None and "dequantize_per_tensor" in str(node.target)
        assert output.unit == ("steps" if dequantized else "float")
        scale = float(node.args[1]) if dequantized else 1.0
        diff = torch.cat([((a[i].float() - b[i].float()).abs() / scale).flatten() for a, b in zip(before, after)])
        assert output.mean == pytest.approx(float(diff.mean()), rel=1e-5, abs=1e-9)
        assert output.max == pytest.approx(float(diff.max()), rel=1e-5, abs=1e-9)
    return verification
