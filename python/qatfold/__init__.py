"""qatfold: fold QAT Conv+BatchNorm chains into quantized int32 conv biases.

The work is done by qatfold's C++ core on PT2 archive bytes; this package
moves ``torch.export.ExportedProgram`` objects in and out of it in memory.

    result = qatfold.fold(exported_program)
    result.program        # the folded ExportedProgram
    print(result.report.text)

or, in an ExecuTorch pipeline, in place of ExecuTorch's FuseQATConvBN:

    PassManager([qatfold.FuseQATConvBN(ep), QuantFusionPass(patterns)])(ep.graph_module)

or around ExecuTorch's own Cadence compile, in one line:

    with qatfold.in_cadence_compile():
        fused = compiler.apply_pre_edge_transform_passes(converted, quantizer)

Importing qatfold registers the ``quantized_decomposed`` ops (where torch is
installed), so ``torch.export.load`` opens quantized archives after it.
"""

try:  # the command-line-only install has no torch
    import torch.ao.quantization.fx._decomposed  # noqa: F401 (registers quantized_decomposed ops)
except ImportError:
    pass

from ._api import (
    CADENCE_FOLDING_FUNCTIONS,
    REFUSAL_CODES,
    FoldedConv,
    FoldReport,
    FoldResult,
    FuseQATConvBN,
    PreparedBias,
    SkippedBatchNorm,
    cadence_compiler,
    fold,
    in_cadence_compile,
    inspect,
)
from ._core import QatfoldError, __version__  # type: ignore[attr-defined]  # set by the extension at load

__all__ = [
    "CADENCE_FOLDING_FUNCTIONS",
    "FoldReport",
    "FoldResult",
    "FoldedConv",
    "FuseQATConvBN",
    "PreparedBias",
    "QatfoldError",
    "REFUSAL_CODES",
    "SkippedBatchNorm",
    "__version__",
    "cadence_compiler",
    "fold",
    "in_cadence_compile",
    "inspect",
]
