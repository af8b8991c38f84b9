"""The demo's stage numbers (examples/cadence_qat.py, `make demo`) against a
separate run of each stage.

The demo folds in memory and fuses and lowers copies of its own. Here the
same program goes through the archive path instead: saved, folded by the
CLI, loaded afresh for each stage, fused with ExecuTorch's QuantFusionPass
and lowered with the tests' Cadence helper. Each figure the demo prints must
come out the same, so a number in the demo cannot come from a program an
earlier stage changed in place.
"""

from __future__ import annotations

import pytest
import torch

from support.repo import run_cli
from zoo.cadence_lowering import lower_to_cadence

pytestmark = pytest.mark.slow


def load_demo():
    from examples import cadence_qat

    return cadence_qat


def test_demo_stage_numbers_match_a_separate_run_of_each_stage(tmp_path):
    from executorch.backends.cadence.aot import compiler
    from executorch.exir.pass_manager import PassManager

    demo = load_demo()
    program, quantizer = demo.train_and_export()
    x = torch.randn(4, 8, 64, generator=torch.Generator().manual_seed(7))
    stages = demo.measure_stages(program, quantizer, x)

    unfolded_path, folded_path = tmp_path / "unfolded.pt2", tmp_path / "folded.pt2"
    torch.export.save(program, unfolded_path)
    run_cli("fold", str(unfolded_path), "-o", str(folded_path))
    unfolded_out = torch.export.load(unfolded_path).module()(x)
    folded_out = torch.export.load(folded_path).module()(x)
    fused = torch.export.load(folded_path)
    PassManager([compiler.QuantFusionPass([q.pattern for q in quantizer.quantizers])])(fused.graph_module)
    fused_out = fused.module()(x)
    lowered = lower_to_cadence(torch.export.load(folded_path))
    lowered_out = lowered.module()(x)

    step = stages["step"]
    separate = {
        "fold": demo.deviation(folded_out, unfolded_out, step),
        "fusion": demo.deviation(fused_out, folded_out, step),
        "lowering": demo.deviation(lowered_out, fused_out, step),
        "end_to_end": demo.deviation(lowered_out, unfolded_out, step),
    }
    for stage, figure in separate.items():
        assert stages[stage] == pytest.approx(figure, rel=1e-6, abs=1e-9), stage
    targets = [str(n.target) for n in lowered.graph_module.graph.nodes if n.op == "call_function"]
    assert stages["lowered_convs"] == sum("quantized_conv" in t for t in targets) == 3
    assert stages["lowered_batch_norms"] == 0
    # What the demo's text claims, each run here on its own: ExecuTorch's pass
    # on a fresh load of the un-folded program computes what the CLI's fold
    # does, and the fusion after it gives what the fusion after ours gives.
    from executorch.backends.cadence.aot.quantizer.passes.fuse_ops import FuseQATConvBN as ReferencePass

    reference = torch.export.load(unfolded_path)
    ReferencePass(reference)(reference.graph_module)
    assert not any("batch_norm" in str(n.target) for n in reference.graph.nodes)
    assert torch.equal(reference.module()(x), folded_out)
    assert stages["fold_same_as_reference"] is True
    PassManager([compiler.QuantFusionPass([q.pattern for q in quantizer.quantizers])])(reference.graph_module)
    assert torch.equal(reference.module()(x), fused_out)
    assert stages["fusion_same_after_reference"] is True
    # The fold is small; the fusion is where the deviation is.
    assert stages["fold"][0] < 3 and stages["fusion"][0] > 10 * stages["fold"][0]
