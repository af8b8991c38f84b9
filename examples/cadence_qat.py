"""QAT with ExecuTorch's Cadence quantizer, folded by qatfold, lowered to Cadence.

A small CNN is trained with quantization-aware training for a few steps on
synthetic data, converted, exported, folded with qatfold (in memory, no
files), lowered through ExecuTorch's Cadence flow, and checked numerically
against the un-folded program. Run: .venv/bin/python examples/cadence_qat.py
"""

from __future__ import annotations

import logging
import typing
import warnings

import torch
import typing_extensions

import qatfold

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
if not hasattr(typing, "override"):  # ExecuTorch 1.4.0's Cadence modules use Python 3.12's typing.override
    typing.override = typing_extensions.override


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


def main() -> None:
    import executorch.backends.cadence.aot.ref_implementations  # noqa: F401 (Cadence kernels in Python)
    from executorch.backends.cadence.aot import compiler
    from executorch.backends.cadence.aot.passes import apply_torch_ops_passes
    from executorch.backends.cadence.aot.quantizer.quantizer import CadenceDefaultQuantizer
    from executorch.exir.pass_manager import PassManager
    from torchao.quantization.pt2e import allow_exported_model_train_eval, move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    torch.manual_seed(0)
    example = (torch.randn(4, 8, 64),)
    quantizer = CadenceDefaultQuantizer(is_qat=True)
    prepared = prepare_qat_pt2e(torch.export.export(KeywordSpotter().train(), example, strict=True).module(), quantizer)
    allow_exported_model_train_eval(prepared)
    optimizer = torch.optim.SGD(prepared.parameters(), lr=0.01)
    for step in range(20):
        x = torch.randn(4, 8, 64)
        loss = torch.nn.functional.mse_loss(prepared(x), torch.tanh(x[:, :8]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"QAT: 20 steps with the Cadence quantizer, final loss {loss.item():.4f}")
    move_exported_model_to_eval(prepared)
    program = torch.export.export(convert_pt2e(prepared), example)
    batch_norms = sum("batch_norm" in str(n.target) for n in program.graph.nodes)
    print(f"converted and exported: {batch_norms} batch_norm nodes still in the program")

    result = qatfold.fold(program)
    print("qatfold.fold:")
    print("  " + result.report.text.rstrip().replace("\n", "\n  "))

    patterns = [q.pattern for q in quantizer.quantizers]
    folded = result.program
    PassManager([compiler.QuantFusionPass(patterns)])(folded.graph_module)
    lowered = compiler._lower_ep_to_cadence(apply_torch_ops_passes(folded)).exported_program()
    targets = [str(n.target) for n in lowered.graph_module.graph.nodes if n.op == "call_function"]
    convs = sum("quantized_conv" in t for t in targets)
    print(f"lowered to Cadence: {convs} quantized convolutions, {sum('batch_norm' in t for t in targets)} batch_norm")

    x = torch.randn(4, 8, 64)
    output = next(n for n in result.program.graph.nodes if n.op == "output").args[0][0]
    step = float(output.args[1])
    on_device = lowered.module()(x)
    folded_out = result.program.module()(x)
    reference = program.module()(x)
    print(f"Cadence kernels vs. the folded program: max difference "
          f"{(on_device - folded_out).abs().max().item() / step:.1f} quantization steps")
    difference = (on_device - reference).abs() / step
    print(f"end to end vs. the un-folded program: mean {difference.mean().item():.1f}, max {difference.max().item():.1f} "
          f"output steps ({step:.4g}). Per-layer rounding compounds through three layers, and "
          f"{result.report.flagged_count} conv(s) are flagged: their BN shift clips values that their output "
          f"quantization was calibrated without (re-calibrate, or fold before calibration).")
    assert convs == 3 and batch_norms > 0
    assert torch.allclose(on_device, folded_out, atol=step * 1.001, rtol=0)


if __name__ == "__main__":
    main()