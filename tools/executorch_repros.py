"""Three ExecuTorch 1.4.0 Cadence bugs, each on a minimal program with no
qatfold in it (docs/upstream.md has the report text for each; the test suite
keeps them as strict expected failures, tests/python/test_upstream_cadence.py).

1. linear_sign_steps: ExecuTorch's Cadence reference kernel quantized_linear
   computes out_scale = 1 / (-out_multiplier * 2^-31 * 2^out_shift), while
   QuantFusionPass passes a positive multiplier: the fused program's output
   is the QDQ program's negated (quantized_relu has the same sign,
   tools/cadence_relu_repro.py).
2. preserve_ops_growth: compiler._lower_ep_to_edge extends the preserve-ops
   list it hands the edge verifier with the module-level list
   TO_EDGE_PRESERVE_OPS, which is that same list: every lowering multiplies
   it, and a process runs out of memory after about a dozen lowerings.
3. max_pool2d_default_stride_error: F.max_pool2d(x, 2) (stride left to its
   default, the kernel size) crashes the Cadence lowering: "stride must have
   2 elements, got 0".

Run: python -m tools.executorch_repros (prints each; exits 1 while any
bug is there).
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


class JustLinear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class MaxPool(torch.nn.Module):
    def __init__(self, stride: int | None = None) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.max_pool2d(x, 2, self.stride)


def _quantized(model: torch.nn.Module, example: tuple):
    """CadenceDefaultQuantizer (PTQ) on `model`, calibrated on 4 batches
    like `example`: the QDQ program, exported."""
    from executorch.backends.cadence.aot.quantizer.quantizer import CadenceDefaultQuantizer
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    torch.manual_seed(0)
    prepared = prepare_pt2e(torch.export.export(model, example, strict=True).module(), CadenceDefaultQuantizer())
    for _ in range(4):
        prepared(torch.randn(example[0].shape))
    return torch.export.export(convert_pt2e(prepared), example)


def linear_sign_steps() -> float:
    """The largest difference, in output steps, between the QDQ program of
    one nn.Linear and the same program after QuantFusionPass, run on
    ExecuTorch's Cadence reference kernels. About 0-1 when the kernel and
    the fusion agree; the output's whole range when the sign is wrong."""
    import executorch.backends.cadence.aot.ref_implementations  # noqa: F401 (registers the reference kernels)
    from executorch.backends.cadence.aot import compiler
    from executorch.backends.cadence.aot.quantizer.quantizer import CadenceDefaultQuantizer
    from executorch.exir.pass_manager import PassManager

    torch.manual_seed(0)
    example = (torch.randn(4, 16),)
    qdq = _quantized(JustLinear(), example)
    fused = torch.export.export(qdq.module(), example)
    PassManager([compiler.QuantFusionPass([q.pattern for q in CadenceDefaultQuantizer().quantizers])])(
        fused.graph_module)
    targets = [str(n.target) for n in fused.graph.nodes if n.op == "call_function"]
    if not any("quantized_linear" in t for t in targets):
        raise RuntimeError(f"QuantFusionPass made no quantized_linear: {targets}")
    output = next(n for n in qdq.graph.nodes if n.op == "output").args[0][0]
    step = float(output.args[1])  # the output's dequantize scale
    x = torch.randn(4, 16, generator=torch.Generator().manual_seed(1))
    expected, actual = qdq.module()(x), fused.module()(x)
    correlation = float(torch.corrcoef(torch.stack([expected.flatten(), actual.flatten()]))[0, 1])
    difference = float(((actual - expected).abs() / step).max())
    print(f"1. quantized_linear vs the QDQ linear: max {difference:.0f} steps, correlation {correlation:.3f}")
    return difference


def preserve_ops_growth() -> tuple[int, int]:
    """(length of compiler.TO_EDGE_PRESERVE_OPS before, after) two
    lowerings of a float one-linear program with _lower_ep_to_edge."""
    from executorch.backends.cadence.aot import compiler

    before = len(compiler.TO_EDGE_PRESERVE_OPS)
    example = (torch.randn(4, 16),)
    for _ in range(2):
        compiler._lower_ep_to_edge(torch.export.export(JustLinear(), example, strict=True))
    after = len(compiler.TO_EDGE_PRESERVE_OPS)
    print(f"2. TO_EDGE_PRESERVE_OPS: {before} ops before two lowerings, {after} after")
    return before, after


def max_pool2d_default_stride_error(stride: int | None = None) -> str | None:
    """The first line of the error lowering a quantized F.max_pool2d(x, 2)
    to Cadence raises, or None when it lowers. `stride=2` spells out the
    default (the workaround)."""
    from executorch.backends.cadence.aot import compiler
    from executorch.backends.cadence.aot.passes import apply_torch_ops_passes
    from executorch.backends.cadence.aot.quantizer.quantizer import CadenceDefaultQuantizer
    from executorch.exir.pass_manager import PassManager

    program = _quantized(MaxPool(stride), (torch.randn(1, 4, 8, 8),))
    preserved = list(compiler.TO_EDGE_PRESERVE_OPS)
    try:
        PassManager([compiler.QuantFusionPass([q.pattern for q in CadenceDefaultQuantizer().quantizers])])(
            program.graph_module)
        compiler._lower_ep_to_cadence(apply_torch_ops_passes(program))
    except Exception as e:  # noqa: BLE001 (the repro reports what the lowering raises)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"3. max_pool2d(x, 2, {stride}) lowering to Cadence: {type(e).__name__}: {first}")
        return first
    finally:
        compiler.TO_EDGE_PRESERVE_OPS[:] = preserved
    print(f"3. max_pool2d(x, 2, {stride}) lowers to Cadence")
    return None


if __name__ == "__main__":
    bugs = [linear_sign_steps() > 1, len(set(preserve_ops_growth())) > 1, max_pool2d_default_stride_error() is not None]
    sys.exit(1 if any(bugs) else 0)
