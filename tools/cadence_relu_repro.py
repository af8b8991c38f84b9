"""ExecuTorch's Cadence QuantFusionPass and its quantized_relu reference kernel
disagree on the sign of the requantization multiplier. No qatfold involved.

A model that is one ReLU, quantized with CadenceDefaultQuantizer (PTQ), then
QuantFusionPass: the fused program should compute q(relu(dq(x))) as the QDQ
program does. ExecuTorch 1.4.0's reference kernel (ref_implementations.
quantized_relu_common) computes out_scale = 1 / (-out_multiplier * 2^-31 *
2^out_shift), while the fusion (get_args_and_kwargs_relu) passes a positive
multiplier, so out_scale is negative and every positive value lands on the
wrong side of the output zero point.

Prints the largest difference in integer steps and exits 1 when the two
disagree by more than one step (0 when they agree: the bug is fixed).
Run: python -m tools.cadence_relu_repro
"""

from __future__ import annotations

import sys
import typing
import warnings

import torch

warnings.filterwarnings("ignore")
if not hasattr(typing, "override"):  # ExecuTorch 1.4.0's Cadence modules use Python 3.12's typing.override
    import typing_extensions

    typing.override = typing_extensions.override


class JustRelu(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


def max_step_difference() -> float:
    import executorch.backends.cadence.aot.ref_implementations  # noqa: F401 (registers the reference kernels)
    from executorch.backends.cadence.aot import compiler
    from executorch.backends.cadence.aot.quantizer.quantizer import CadenceDefaultQuantizer
    from executorch.exir.pass_manager import PassManager
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    torch.manual_seed(0)
    example = (torch.randn(2, 8, 32),)
    quantizer = CadenceDefaultQuantizer()
    prepared = prepare_pt2e(torch.export.export(JustRelu(), example, strict=True).module(), quantizer)
    for _ in range(4):
        prepared(torch.randn(2, 8, 32))
    qdq = torch.export.export(convert_pt2e(prepared), example)
    fused = torch.export.export(qdq.module(), example)
    PassManager([compiler.QuantFusionPass([q.pattern for q in quantizer.quantizers])])(fused.graph_module)
    targets = [str(n.target) for n in fused.graph.nodes if n.op == "call_function"]
    if not any("quantized_relu" in t for t in targets):
        raise RuntimeError(f"QuantFusionPass made no quantized_relu: {targets}")

    output = next(n for n in qdq.graph.nodes if n.op == "output").args[0][0]
    step = float(output.args[1])  # the output's dequantize scale
    x = torch.randn(2, 8, 32)
    expected, actual = qdq.module()(x), fused.module()(x)
    difference = ((actual - expected).abs() / step).max().item()
    print(f"executorch quantized_relu vs q(relu(dq(x))): max {difference:.0f} integer steps "
          f"(output scale {step:.4g}); fused ops: {[t for t in targets if 'cadence' in t]}")
    return difference


if __name__ == "__main__":
    sys.exit(1 if max_step_difference() > 1 else 0)
