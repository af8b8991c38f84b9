"""qatfold for Python users: fold(ep), the FuseQATConvBN pass, errors."""

from __future__ import annotations

import pytest
import torch

import qatfold
from support.graph_compare import assert_same_graph, assert_same_tensors, random_inputs
from support.oracle import conv_int32_biases, op_multiset, oracle_fold
from support.repo import FIXTURES
from support.verification_check import assert_verified
from zoo.cadence_lowering import lower_to_cadence


def test_fold_returns_the_folded_program_and_a_report():
    program = torch.export.load(FIXTURES / "qat_cadence_cnn.pt2")
    result = qatfold.fold(program)
    assert_verified(program, result.program, result.report.folded)
    assert isinstance(result.program, torch.export.ExportedProgram)
    assert not any("batch_norm" in str(n.target) for n in result.program.graph.nodes)
    report = result.report
    assert (report.chains_found, report.folded_count, report.skipped_count) == (2, 2, 0)
    assert [c.module_path for c in report.folded] == ["conv1", "conv2"]
    assert report.prepared_biases == [qatfold.PreparedBias("conv2d", "added a zero int32 bias")]
    assert all(0 < c.relative_shift < 1 and not c.flagged for c in report.folded)
    assert "folded 2" in report.text
    reference = oracle_fold(FIXTURES / "qat_cadence_cnn.pt2")
    expected = conv_int32_biases(reference)
    actual = conv_int32_biases(result.program)
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
    # The input program is left as it was.
    assert any("batch_norm" in str(n.target) for n in program.graph.nodes)


def test_fold_with_nothing_to_fold_returns_an_equal_program():
    program = torch.export.load(FIXTURES / "float_cnn.pt2")
    result = qatfold.fold(program, explain=True)
    assert_verified(program, result.program, result.report.folded)
    assert not result.report.changed
    assert [s.qat_chain for s in result.report.skipped] == [False]
    assert_same_graph(program, result.program)
    assert_same_tensors(program.state_dict, result.program.state_dict)
    assert_same_tensors(program.constants, result.program.constants)
    x = random_inputs(program)
    assert torch.equal(program.module()(*x), result.program.module()(*x))


def test_explain_controls_which_batch_norms_are_listed():
    program = torch.export.load(FIXTURES / "float_cnn.pt2")
    assert qatfold.fold(program).report.skipped == []
    assert len(qatfold.fold(program, explain=True).report.skipped) == 1


def test_risk_threshold_flags_convs():
    program = torch.export.load(FIXTURES / "qat_cadence_cnn.pt2")
    report = qatfold.fold(program, risk_threshold=0.0).report
    assert report.flagged_count == 2 and all(c.flagged for c in report.folded)


def test_erased_nodes_are_let_go():
    """FX's graph namespace keeps every node it made, erased or not; the fold
    copies the whole graph and erases each chain, so the result would carry
    the erased nodes (and their meta) for as long as it lives."""
    import gc
    import weakref

    program = torch.export.load(FIXTURES / "qat_cadence_cnn.pt2")
    erased = []
    original_erase = torch.fx.Graph.erase_node

    def recording_erase(graph, node):
        erased.append(weakref.ref(node))
        return original_erase(graph, node)

    torch.fx.Graph.erase_node = recording_erase
    try:
        result = qatfold.fold(program)
    finally:
        torch.fx.Graph.erase_node = original_erase
    gc.collect()
    assert len(erased) > 10
    assert [ref().name for ref in erased if ref() is not None] == []
    assert result.report.folded_count == 2


def test_fuse_pass_updates_the_program_in_place():
    program = torch.export.load(FIXTURES / "qat_cadence_cnn.pt2")
    graph_module = program.graph_module
    fuse = qatfold.FuseQATConvBN(program)
    result = fuse(graph_module)
    assert result.modified and result.graph_module is graph_module is program.graph_module
    assert fuse.report.folded_count == 2
    reference = oracle_fold(FIXTURES / "qat_cadence_cnn.pt2")
    assert op_multiset(program) == op_multiset(reference)
    for seed in range(3):
        x = random_inputs(reference, seed)
        assert torch.equal(program.module()(*x), reference.module()(*x))
    # The state_dict follows the graph: the folded biases are there, BN's parameters are gone.
    assert "bn1.running_mean" not in program.state_dict
    assert program.state_dict["conv2d_bias"].dtype == torch.int32


def test_errors_are_python_exceptions_with_the_cli_message():
    from qatfold import _core

    with pytest.raises(qatfold.QatfoldError, match="not a zip archive"):
        _core.fold_archive(b"definitely not an archive")
    data = (FIXTURES / "float_cnn.pt2").read_bytes()
    with pytest.raises(qatfold.QatfoldError, match="zip"):
        _core.fold_archive(data[: len(data) // 2])
    assert issubclass(qatfold.QatfoldError, ValueError)


def test_inspect():
    summary = qatfold.inspect(torch.export.load(FIXTURES / "qat_cadence_cnn.pt2"))
    assert summary["schema_version"].startswith("8.")
    assert {"op": "aten.batch_norm.default", "count": 2} in summary["ops"]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["conv2d_nobias", "chain3", "residual", "two_branches"])
def test_drop_in_replacement_in_the_cadence_pipeline(case, tmp_path):
    """ExecuTorch's apply_pre_edge_transform_passes pipeline with qatfold's pass
    in place of its own gives the same lowered program."""
    from executorch.backends.cadence.aot.quantizer.passes.fuse_ops import FuseQATConvBN as ReferencePass

    from zoo.program_cache import cadence_zoo_archive

    path = cadence_zoo_archive(case)
    ours = lower_to_cadence(torch.export.load(path), qatfold.FuseQATConvBN)
    theirs = lower_to_cadence(torch.export.load(path), ReferencePass)
    assert op_multiset(ours) == op_multiset(theirs)
    assert not any("batch_norm" in str(t) for t in op_multiset(ours))
    for seed in range(3):
        x = random_inputs(torch.export.load(path), seed)
        assert torch.equal(ours.module()(*x), theirs.module()(*x))


@pytest.mark.slow
def test_in_cadence_compile_swaps_executorch_pass_for_the_block():
    """ExecuTorch's own apply_pre_edge_transform_passes, unchanged, folds with
    qatfold inside the block (and with its own pass outside): the same fused
    program either way, and the pass is restored on exit."""
    from executorch.backends.cadence.aot.quantizer.quantizer import CadenceDefaultQuantizer

    from zoo.program_cache import cadence_zoo_archive

    path = cadence_zoo_archive("chain3")
    quantizer = CadenceDefaultQuantizer(is_qat=True)
    compiler = qatfold.cadence_compiler()
    original = compiler.FuseQATConvBN
    with qatfold.in_cadence_compile(risk_threshold=0.0) as reports:
        assert compiler.FuseQATConvBN is not original
        ours = compiler.apply_pre_edge_transform_passes(torch.export.load(path), quantizer)
    assert compiler.FuseQATConvBN is original
    theirs = compiler.apply_pre_edge_transform_passes(torch.export.load(path), quantizer)
    (report,) = reports
    assert report.folded_count == 3 and report.flagged_count == 3  # the option reached the pass
    assert not any("batch_norm" in str(t) for t in op_multiset(ours))
    assert op_multiset(ours) == op_multiset(theirs)
    for seed in range(2):
        x = random_inputs(torch.export.load(path), seed)
        assert torch.equal(ours.module()(*x), theirs.module()(*x))
    with pytest.raises(TypeError):
        with qatfold.in_cadence_compile(no_such_option=1):
            pass
    # calibrate= reaches each fold (checked against the program it folds) and is reported when unused.
    program = torch.export.load(path)
    with qatfold.in_cadence_compile(calibrate=random_inputs(program, 0)) as reports:
        compiler.apply_pre_edge_transform_passes(program, quantizer)
    (report,) = reports
    assert report.folded_count == 3 and any(n.startswith("calibrate: no fold used") for n in report.notes)
    with pytest.raises(qatfold.QatfoldError, match="calibrate: no inputs given"):
        with qatfold.in_cadence_compile(calibrate=[]):
            compiler.apply_pre_edge_transform_passes(torch.export.load(path), quantizer)
    assert compiler.FuseQATConvBN is original


def test_in_cadence_compile_needs_no_shim_from_the_user():
    """On the Python the project pins (3.11), ExecuTorch 1.4.0's Cadence
    modules need typing.override; qatfold installs it, and the docs name the
    functions that fold, which are ExecuTorch's own."""
    import subprocess
    import sys

    code = ("import qatfold\n"
            "with qatfold.in_cadence_compile() as reports:\n"
            "    from executorch.backends.cadence.aot import compiler\n"
            "    assert compiler.FuseQATConvBN.__module__.startswith('qatfold.')\n"
            "print(','.join(n for n in qatfold.CADENCE_FOLDING_FUNCTIONS if callable(getattr(compiler, n))))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().split(",") == list(qatfold.CADENCE_FOLDING_FUNCTIONS)
    import inspect as python_inspect
    import re

    # Which of ExecuTorch's compiler functions reach the pass: those that
    # construct it, and those that call one that does (to a fixed point).
    compiler = qatfold.cadence_compiler()
    sources = {name: python_inspect.getsource(function)
               for name, function in python_inspect.getmembers(compiler, python_inspect.isfunction)
               if function.__module__ == compiler.__name__}
    folding = {name for name, source in sources.items() if "FuseQATConvBN(" in source}
    while True:
        more = {name for name, source in sources.items()
                if any(re.search(rf"\b{callee}\(", source.split(":", 1)[1]) for callee in folding)} - folding
        if not more:
            break
        folding |= more
    assert sorted(folding) == sorted(qatfold.CADENCE_FOLDING_FUNCTIONS)
    assert "export_to_cadence" not in qatfold.CADENCE_FOLDING_FUNCTIONS

