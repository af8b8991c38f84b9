"""ExecuTorch 1.4.0's Cadence bugs that users of qatfold meet, each
reproduced without qatfold (tools/executorch_repros.py; the report text is
in docs/upstream.md). Each is a strict expected failure on 1.4.0: a fixed
ExecuTorch makes the test pass, which fails the run and says so; on any
other version the tests must pass. The expected failure is the assertion on
what was measured (raises=AssertionError): an import error or an API change
fails the test instead of passing as "expected". Beside each, a test that
passes today shows the repro would pass on a fixed ExecuTorch (the
example's sign patch, the spelled-out stride)."""

from __future__ import annotations

import sys
from importlib import metadata

import pytest

from examples import digits
from support.repo import REPO

BUGGY = metadata.version("executorch") == "1.4.0"

pytestmark = pytest.mark.slow  # Cadence lowerings


@pytest.mark.xfail(BUGGY, strict=True, raises=AssertionError,
                   reason="ExecuTorch 1.4.0: quantized_linear's reference kernel negates the multiplier the fusion "
                          "passes")
def test_cadence_quantized_linear_computes_the_qdq_linear():
    from tools.executorch_repros import linear_sign_steps

    assert linear_sign_steps() <= 1


def test_with_the_sign_patch_quantized_linear_computes_the_qdq_linear():
    from tools.executorch_repros import linear_sign_steps

    with digits.cadence_sign_patch():
        assert linear_sign_steps() <= 1


@pytest.mark.xfail(BUGGY, strict=True, raises=AssertionError,
                   reason="ExecuTorch 1.4.0: _lower_ep_to_edge extends TO_EDGE_PRESERVE_OPS with itself on every call")
def test_cadence_lowering_leaves_the_preserve_ops_list_as_it_was():
    from executorch.backends.cadence.aot import compiler

    from tools.executorch_repros import preserve_ops_growth

    kept = list(compiler.TO_EDGE_PRESERVE_OPS)
    try:
        before, after = preserve_ops_growth()
    finally:
        compiler.TO_EDGE_PRESERVE_OPS[:] = kept
    assert after == before


@pytest.mark.xfail(BUGGY, strict=True, raises=AssertionError,
                   reason="ExecuTorch 1.4.0: max_pool2d with its default stride crashes the Cadence lowering")
def test_cadence_lowers_max_pool2d_with_its_default_stride():
    from tools.executorch_repros import max_pool2d_default_stride_error

    error = max_pool2d_default_stride_error()
    if error is not None and "stride must have 2 elements" not in error:
        raise RuntimeError(f"another failure than the one pinned: {error}")
    assert error is None, error


def test_cadence_lowers_max_pool2d_with_the_stride_spelled_out():
    from tools.executorch_repros import max_pool2d_default_stride_error

    assert max_pool2d_default_stride_error(stride=2) is None


def test_the_report_snippets_run_and_show_the_bugs(tmp_path):
    """The repros in docs/upstream.md run as written and print what the
    report says they print (on 1.4.0; once fixed, the report is moot)."""
    import re
    import subprocess

    text = (REPO / "docs" / "upstream.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    printed = []
    for index, block in enumerate(blocks):
        script = tmp_path / f"report_{index}.py"
        script.write_text(block)
        run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
        assert run.returncode == 0, run.stderr[-2000:]
        printed.append(run.stdout.split())
    if BUGGY:
        assert printed[0] == ["tensor(-1.0000)"] or printed[0][-1].startswith("tensor(-0.99"), printed[0]
        assert printed[1] == ["1", "16"], printed[1]
