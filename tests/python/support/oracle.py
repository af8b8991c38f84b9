"""Running ExecuTorch's FuseQATConvBN (the reference) and reading results."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch


def oracle_fold(path: Path) -> torch.export.ExportedProgram:
    """ExecuTorch 1.4.0's FuseQATConvBN on the program loaded from `path`."""
    from executorch.backends.cadence.aot.quantizer.passes.fuse_ops import FuseQATConvBN

    program = torch.export.load(path)
    FuseQATConvBN(program)(program.graph_module)
    return program


def qatfold_fold(path: Path, out: Path, *extra: str) -> torch.export.ExportedProgram:
    """The CLI's fold, checked against the in-memory one (front_door_check.py)."""
    from support.front_door_check import folded_both_ways

    return folded_both_ways(path, out, *extra)


def constant_of(program: torch.export.ExportedProgram, node: torch.fx.Node) -> torch.Tensor:
    signature = program.graph_signature
    for table, source in (
        (signature.inputs_to_parameters, program.state_dict),
        (signature.inputs_to_buffers, program.state_dict),
        (signature.inputs_to_lifted_tensor_constants, program.constants),
    ):
        if node.name in table:
            return source[table[node.name]]
    raise KeyError(node.name)


def conv_int32_biases(program: torch.export.ExportedProgram) -> dict[str, torch.Tensor]:
    """conv node name -> the int32 tensor behind its dequantized bias."""
    biases = {}
    for node in program.graph.nodes:
        if node.op != "call_function" or "conv" not in str(node.target):
            continue
        bias = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
        if isinstance(bias, torch.fx.Node) and "dequantize" in str(bias.target):
            biases[node.name] = constant_of(program, bias.args[0])
    return biases


def op_multiset(program: torch.export.ExportedProgram) -> Counter:
    return Counter(str(n.target) for n in program.graph.nodes if n.op == "call_function")


def output_step(program: torch.export.ExportedProgram) -> float:
    """The quantization step of the program's (first) output, if dequantized."""
    output = next(n for n in program.graph.nodes if n.op == "output").args[0][0]
    if "dequantize_per_tensor" in str(output.target):
        return float(output.args[1])
    raise ValueError("output is not dequantized")
