"""Arm's quantizer and TOSA lowering for the tests: TOSAQuantizer
(TOSA-1.0+INT, symmetric, QAT) through the QAT flow, and the program lowered
with the TOSAPartitioner, with what stays outside the delegate."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from zoo.flows import qat_convert


def compile_spec():
    from executorch.backends.arm.tosa.compile_spec import TosaCompileSpec

    return TosaCompileSpec("TOSA-1.0+INT")


def quantizer():
    from executorch.backends.arm.quantizer import TOSAQuantizer, get_symmetric_quantization_config

    made = TOSAQuantizer(compile_spec())
    made.set_global(get_symmetric_quantization_config(is_qat=True))
    return made


class TwoBlocks(nn.Module):
    """conv (no bias) + ReLU, then conv + BN: the second conv's int32 bias
    makes the program one that encodes conv biases as int32; the first conv
    has none and no BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, bias=False)
        self.conv2 = nn.Conv2d(4, 4, 3)
        self.bn2 = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(torch.relu(self.conv1(x))))


def export_arm_qat(model: nn.Module, example: tuple) -> torch.export.ExportedProgram:
    torch.manual_seed(0)
    return torch.export.export(qat_convert(model, example, quantizer()), example)


@dataclass
class Lowered:
    program: torch.export.ExportedProgram
    outside: list[str]  # the call_function targets left outside the delegate

    def count(self, fragment: str) -> int:
        return sum(fragment in target for target in self.outside)


def lower_to_arm(program: torch.export.ExportedProgram) -> Lowered:
    from executorch.backends.arm.tosa.partitioner import TOSAPartitioner
    from executorch.exir import to_edge_transform_and_lower

    edge = to_edge_transform_and_lower(program, partitioner=[TOSAPartitioner(compile_spec())])
    lowered = edge.exported_program()
    return Lowered(lowered, [str(n.target) for n in lowered.graph.nodes if n.op == "call_function"])
