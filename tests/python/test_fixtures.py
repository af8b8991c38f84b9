"""The committed fixtures are what zoo/fixtures.py makes today."""

from __future__ import annotations

import pytest
import torch

from support.graph_compare import assert_same_graph, assert_same_tensors, op_targets
from support.repo import FIXTURES


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    """The fixtures made afresh, saved and loaded back as the committed ones were.
    The tests export torchao's patterns once (pattern_cache.py) where the
    scripts that made the committed files did not: agreeing with them is what
    shows the shortcut changes no program."""
    from torchao.quantization.pt2e import qat_utils

    assert getattr(qat_utils._get_aten_graph_module_for_pattern, "_qatfold_memoized", False)
    from zoo.fixtures import fixture_programs

    folder = tmp_path_factory.mktemp("regenerated")
    programs = {}
    for name, program in fixture_programs().items():
        torch.export.save(program, folder / f"{name}.pt2")
        programs[name] = torch.export.load(folder / f"{name}.pt2")
    return programs


@pytest.mark.parametrize("name", ["float_cnn", "qat_cadence_cnn", "qat_cadence_cnn_decomposed", "qat_xnnpack_cnn",
                                  "qat_cadence_dynamic", "tied_weights",
                                  "buffers", "lifted_constants"])
def test_committed_fixture_matches_regenerated(regenerated, name):
    committed = torch.export.load(FIXTURES / f"{name}.pt2")
    fresh = regenerated[name]
    # Stack traces name the checkout's path; everything else must agree. QAT
    # training sums in an order that depends on the CPU's vector width, so a
    # learned scale can differ in its last float32 bit between machines (and a
    # quantized weight by one step): up to 1e-5 relative, the same program.
    assert_same_graph(committed, fresh, with_meta=False, float_rel=1e-5)
    # A trained parameter near zero differs by what its gradient steps summed
    # differently, not relative to its size: on an AVX-512 AMD EPYC the
    # XNNPACK fixture's conv2 parameters (some 1e-4) came out up to 7.4e-8
    # apart. 1e-6 absolute allows that; another seed or script moves them
    # by far more. torch.export.save groups tied storages, so a loaded
    # state_dict can list keys in another order than the in-memory one.
    assert_same_tensors(committed.state_dict, fresh.state_dict, ordered=False, float_rel=1e-5, float_abs=1e-6)
    assert_same_tensors(committed.constants, fresh.constants, ordered=False, float_rel=1e-5, float_abs=1e-6)


def test_qat_fixture_still_holds_the_chain():
    program = torch.export.load(FIXTURES / "qat_cadence_cnn.pt2")
    targets = op_targets(program)
    assert targets.count("aten.batch_norm.default") == 2
    assert "quantized_decomposed.dequantize_per_tensor.default" in targets
    int32_biases = [t for t in program.state_dict.values() if t.dtype == torch.int32]
    assert len(int32_biases) == 1  # conv2 has a bias, conv1 does not


def test_tied_fixture_shares_storage():
    program = torch.export.load(FIXTURES / "tied_weights.pt2")
    a, b = program.state_dict["a.weight"], program.state_dict["b.weight"]
    assert a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def test_deflated_fixture_loads_in_torch():
    deflated = torch.export.load(FIXTURES / "tied_weights_deflated.pt2")
    plain = torch.export.load(FIXTURES / "tied_weights.pt2")
    assert_same_tensors(plain.state_dict, deflated.state_dict)
