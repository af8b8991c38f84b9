"""QAT with ExecuTorch's Cadence quantizer, folded by qatfold, lowered to Cadence.

A small CNN is trained with quantization-aware training for a few steps on
synthetic data, converted, exported, folded with qatfold (in memory, no
files), and lowered through ExecuTorch's Cadence flow. Each stage is measured
on its own: the fold (against the un-folded program, and against ExecuTorch's
own FuseQATConvBN), ExecuTorch's QuantFusionPass, and the lowering. Run:
.venv/bin/python examples/cadence_qat.py
"""

from __future__ import annotations

import io
import logging
import warnings

import torch

import qatfold

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
compiler = qatfold.cadence_compiler()  # ExecuTorch's Cadence compile, with the Python 3.11 shim it needs


class KeywordSpotter(torch.nn.Module):
    """An audio-style 1-D CNN: three conv-BN-ReLU blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.Sequential(
            torch.nn.Conv1d(8, 16, 5, padding=2, bias=False), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
            torch.nn.Conv1d(16, 16, 3, padding=1, groups=4), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
            torch.nn.Conv1d(16, 8, 1), torch.nn.BatchNorm1d(8),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def train_and_export():
    """QAT for 20 steps with the Cadence quantizer; returns the converted,
    exported program (its batch_norms still there) and the quantizer."""
    from executorch.backends.cadence.aot.quantizer.quantizer import CadenceDefaultQuantizer
    from torchao.quantization.pt2e import allow_exported_model_train_eval, move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    torch.manual_seed(0)
    example = (torch.randn(4, 8, 64),)
    quantizer = CadenceDefaultQuantizer(is_qat=True)
    prepared = prepare_qat_pt2e(torch.export.export(KeywordSpotter().train(), example, strict=True).module(), quantizer)
    allow_exported_model_train_eval(prepared)
    optimizer = torch.optim.SGD(prepared.parameters(), lr=0.01)
    for _ in range(20):
        x = torch.randn(4, 8, 64)
        loss = torch.nn.functional.mse_loss(prepared(x), torch.tanh(x[:, :8]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"QAT: 20 steps with the Cadence quantizer, final loss {loss.item():.4f}")
    move_exported_model_to_eval(prepared)
    return torch.export.export(convert_pt2e(prepared), example), quantizer


def deviation(a: torch.Tensor, b: torch.Tensor, step: float) -> tuple[float, float]:
    """Mean and max |a - b| in output steps."""
    d = (a - b).abs() / step
    return d.mean().item(), d.max().item()


def fresh_copy(program):
    """An independent copy of `program` (saved and loaded in memory)."""
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    return torch.export.load(buffer)


def measure_stages(program, quantizer, x: torch.Tensor) -> dict:
    """Each stage on its own, on input `x`, in steps of the output's
    quantization, so a deviation is blamed on the stage that makes it: the
    fold (qatfold.fold, and ExecuTorch's FuseQATConvBN for comparison),
    ExecuTorch's Cadence QuantFusionPass, and the lowering. Every stage gets
    its own copy: the fusion changes its program in place. ExecuTorch's pass
    runs on a copy of the un-folded program, the program it would see."""
    import executorch.backends.cadence.aot.ref_implementations  # noqa: F401 (Cadence kernels in Python)
    from executorch.backends.cadence.aot.passes import apply_torch_ops_passes
    from executorch.backends.cadence.aot.quantizer.passes.fuse_ops import FuseQATConvBN as ReferencePass
    from executorch.exir.pass_manager import PassManager

    folded = qatfold.fold(program).program
    output = next(n for n in folded.graph.nodes if n.op == "output").args[0][0]
    step = float(output.args[1])
    reference = fresh_copy(program)  # un-folded, for ExecuTorch's own pass
    ReferencePass(reference)(reference.graph_module)
    reference_batch_norms = sum("batch_norm" in str(n.target) for n in reference.graph.nodes)
    unfolded_out = program.module()(x)
    folded_out = folded.module()(x)
    patterns = [q.pattern for q in quantizer.quantizers]

    def fuse(to_fuse):
        PassManager([compiler.QuantFusionPass(patterns)])(to_fuse.graph_module)  # in place
        return to_fuse

    same_as_reference = torch.equal(folded_out, reference.module()(x))
    fused = fuse(qatfold.fold(program).program)
    fused_out = fused.module()(x)
    reference_fused_out = fuse(reference).module()(x)
    lowered = compiler._lower_ep_to_cadence(apply_torch_ops_passes(fused)).exported_program()
    targets = [str(n.target) for n in lowered.graph_module.graph.nodes if n.op == "call_function"]
    lowered_out = lowered.module()(x)
    return {
        "step": step,
        "fold": deviation(folded_out, unfolded_out, step),
        "fold_same_as_reference": same_as_reference,
        "reference_batch_norms": reference_batch_norms,
        "fusion": deviation(fused_out, folded_out, step),
        "fusion_same_after_reference": torch.equal(fused_out, reference_fused_out),
        "lowered_convs": sum("quantized_conv" in t for t in targets),
        "lowered_batch_norms": sum("batch_norm" in t for t in targets),
        "lowering": deviation(lowered_out, fused_out, step),
        "end_to_end": deviation(lowered_out, unfolded_out, step),
    }


def main() -> None:
    program, quantizer = train_and_export()
    batch_norms = sum("batch_norm" in str(n.target) for n in program.graph.nodes)
    print(f"converted and exported: {batch_norms} batch_norm nodes still in the program")

    estimated = qatfold.fold(program).report
    # Verified on 8 batches of the kind of data the model saw: the flags then
    # come from the measured saturation of each conv's output quantization,
    # not from the estimate (the shift against the calibrated range).
    result = qatfold.fold(program, verify=[(torch.randn(4, 8, 64),) for _ in range(8)])
    print("qatfold.fold, verified:")
    print("  " + result.report.text.rstrip().replace("\n", "\n  "))
    print(f"  flagged by estimate: {estimated.flagged_count}, by measurement: {result.report.flagged_count}")
    assert result.verification is not None and result.verification.batches == 8

    stages = measure_stages(program, quantizer, torch.randn(4, 8, 64))

    def steps(figure: tuple[float, float]) -> str:
        return f"mean {figure[0]:.2f}, max {figure[1]:.1f} steps"

    print(f"1. the fold: un-folded vs folded program: {steps(stages['fold'])}")
    print(f"   ExecuTorch's FuseQATConvBN on the un-folded program ({stages['reference_batch_norms']} batch_norm "
          f"left) gives identical outputs: {stages['fold_same_as_reference']}")
    print(f"2. ExecuTorch's Cadence QuantFusionPass: folded vs fused program: {steps(stages['fusion'])}")
    print(f"   after ExecuTorch's own fold the fusion gives identical outputs: "
          f"{stages['fusion_same_after_reference']} (this stage's deviation is the fusion's, not the fold's)")
    print(f"3. lowering to Cadence: {stages['lowered_convs']} quantized convolutions, {stages['lowered_batch_norms']} "
          f"batch_norm; fused vs lowered: {steps(stages['lowering'])}")
    print(f"end to end, un-folded vs lowered: {steps(stages['end_to_end'])} (output step {stages['step']:.4g})")

    assert batch_norms > 0 and stages["lowered_convs"] == 3, (batch_norms, stages["lowered_convs"])
    assert stages["reference_batch_norms"] == 0, "ExecuTorch's pass must have folded the un-folded program"
    assert stages["fold_same_as_reference"], "qatfold's fold must compute what ExecuTorch's pass computes"
    assert stages["fusion_same_after_reference"], "the fusion must see the same program either way"
    assert stages["lowering"][1] <= 1.001, "lowering must stay within a step of the fused program"


if __name__ == "__main__":
    main()
