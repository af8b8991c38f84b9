"""The Python report mirrors the core's: every dataclass has the fields of
the JSON object the core writes for it (report/fold_report.h lists them,
taken from a rendered report), and a real report's JSON has those keys."""

from __future__ import annotations

import dataclasses
import json

import qatfold
from qatfold import _core
from support.repo import FIXTURES, run_cli

CORE = json.loads(_core.report_fields())
# Fields only Python has: what the front door adds to the core's report.
PYTHON_ONLY = {"FoldReport": {"notes", "text"}}
MIRRORS = (qatfold.FoldReport, qatfold.FoldedConv, qatfold.SkippedBatchNorm, qatfold.PreparedBias)


def test_each_dataclass_has_the_fields_of_its_json_object():
    assert set(CORE) >= {cls.__name__ for cls in MIRRORS}
    for cls in MIRRORS:
        names = {f.name for f in dataclasses.fields(cls)} - PYTHON_ONLY.get(cls.__name__, set())
        assert names == set(CORE[cls.__name__]), cls.__name__


def test_a_real_report_has_exactly_the_listed_keys():
    folded = json.loads(run_cli("fold", "--json", "--dry-run", str(FIXTURES / "qat_cadence_cnn.pt2")).stdout)
    # The command line adds the files it read and wrote.
    assert list(folded) == CORE["FoldReport"] + ["input", "output"]
    assert folded["folded"] and all(list(c) == CORE["FoldedConv"] for c in folded["folded"])
    assert folded["prepared_biases"] and all(list(p) == CORE["PreparedBias"] for p in folded["prepared_biases"])
    assert list(folded["bias_preparation"]) == CORE["bias_preparation"]
    skipped = json.loads(run_cli("fold", "--json", "--dry-run", "--explain", str(FIXTURES / "float_cnn.pt2")).stdout)
    assert skipped["skipped"] and all(list(s) == CORE["SkippedBatchNorm"] for s in skipped["skipped"])


def test_strict_failures_have_the_listed_keys():
    report = qatfold.fold(_training_mode_program()).report
    assert report.strict_failures
    assert all(list(failure) == CORE["strict_failures"] for failure in report.strict_failures)


def _training_mode_program():
    import torch

    from zoo.models import ConvBN

    return torch.export.export(ConvBN(cout=4, bias=True).train(), (torch.randn(2, 3, 8, 8),))


def test_the_dialects_ops_are_torchs():
    """The core's quantization dialect names ops torch registers, as FX prints them."""
    import torch
    import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401  (registers quantized_decomposed)

    rows = _core.quantization_ops()
    assert {(r["role"], r["granularity"]) for r in rows} == {
        (role, granularity) for role in ("quantize", "dequantize") for granularity in ("per_tensor", "per_channel")}
    for row in rows:
        op = getattr(torch.ops.quantized_decomposed, row["name"]).default
        assert "torch.ops." + str(op) == row["target"]
