"""XNNPACK-quantized programs for qatfold's backend-safety tests.

Each case is a small model quantized with ExecuTorch's XNNPACKQuantizer
(`get_symmetric_quantization_config`), QAT (prepare_qat_pt2e, a few training
steps, convert_pt2e) or PTQ (prepare_pt2e, calibration, convert_pt2e), per
channel or per tensor, then exported. The layers are the ones torchao
leaves a BatchNorm behind (conv2d with padding="same", conv3d, linear +
BatchNorm1d) next to ones it folds itself (conv1d/conv2d + BatchNorm).

`CASES` train 4 steps on batches of 2 (the example's): enough for the
backend checks, not a trained model. In training each BatchNorm normalizes
by the statistics of two samples and each observer sees the range of two
samples; at eval the BatchNorms use running statistics that 4 steps barely
move from randomize_bn's. So a layer can see values at eval its output
observer never saw: the net1d linear saturates two of its six channels
entirely (33% of its outputs; measured on the same model: 19% without
randomize_bn, 17% after 200 steps on batches of 2, 13% after 4 steps on
batches of 32, 0.65% after 200 steps on batches of 32). `TRAINED_CASES`
train as a user does: 200 steps on batches of 32 towards a teacher's
outputs (a float model of the same shape), the learning rate decaying to 0.
The fidelity of a fold is measured on these. (Trained towards noise at a
constant rate, one run's net2d linear moved a channel by over 30 of its standard
deviations in the last 40 steps, past the range its observer had seen.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from zoo.models import randomize_bn


class Net2d(nn.Module):
    """conv2d+BN+ReLU, conv2d(padding="same")+BN+ReLU, mean, linear+BatchNorm1d."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding="same")
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 6)
        self.bn3 = nn.BatchNorm1d(6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.bn3(self.fc(x.mean(dim=(2, 3))))


class Net1d(nn.Module):
    """conv1d+BN+ReLU, conv1d(padding="same")+BN, mean, linear+BatchNorm1d."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(4, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm1d(8)
        self.conv2 = nn.Conv1d(8, 8, 5, padding="same", bias=False)
        self.bn2 = nn.BatchNorm1d(8)
        self.fc = nn.Linear(8, 6)
        self.bn3 = nn.BatchNorm1d(6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x)).mean(dim=2)
        return self.bn3(self.fc(x))


class Net3d(nn.Module):
    """conv3d+BN+ReLU, then conv3d (no bias)+BN."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(2, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm3d(4)
        self.conv2 = nn.Conv3d(4, 4, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))


MODELS: dict[str, Callable[[int], tuple[nn.Module, tuple]]] = {
    "net2d": lambda batch=2: (Net2d(), (torch.randn(batch, 3, 12, 12),)),
    "net1d": lambda batch=2: (Net1d(), (torch.randn(batch, 4, 24),)),
    "net3d": lambda batch=2: (Net3d(), (torch.randn(batch, 2, 6, 6, 6),)),
}


@dataclass(frozen=True)
class Config:
    """How a case is quantized: the flow, the weight granularity, and for QAT
    the training (steps on batches of `batch`, the program takes that batch;
    towards noise, or towards a teacher's outputs: see qat_convert)."""

    flow: str  # "qat" or "ptq"
    per_channel: bool
    batch: int = 2
    steps: int = 4
    teacher: bool = False


CONFIGS = {
    "qat_per_channel": Config("qat", True),
    "qat_per_tensor": Config("qat", False),
    "ptq_per_channel": Config("ptq", True),
    "ptq_per_tensor": Config("ptq", False),
    "qat_trained_per_channel": Config("qat", True, batch=32, steps=200, teacher=True),
    "qat_trained_per_tensor": Config("qat", False, batch=32, steps=200, teacher=True),
}
CASES = [f"{model}:{config}" for model in MODELS for config in CONFIGS if "trained" not in config]
TRAINED_CASES = [f"{model}:qat_trained_per_channel" for model in MODELS] + ["net2d:qat_trained_per_tensor"]


def export_xnnpack(case: str) -> tuple[torch.export.ExportedProgram, tuple]:
    """The exported program of `case` ("net2d:qat_per_channel") and its example input."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from zoo.flows import qat_convert

    model_name, config_name = case.split(":")
    config = CONFIGS[config_name]
    torch.manual_seed(0)
    model, example = MODELS[model_name](config.batch)
    randomize_bn(model, 100)
    quantizer = XNNPACKQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=config.per_channel, is_qat=config.flow == "qat"))
    if config.flow == "qat":
        teacher = None
        if config.teacher:
            torch.manual_seed(1)
            teacher = type(model)().eval()
        converted = qat_convert(model, example, quantizer, steps=config.steps, teacher=teacher)
    else:
        captured = torch.export.export(model.eval(), example, strict=True).module()
        prepared = prepare_pt2e(captured, quantizer)
        generator = torch.Generator().manual_seed(1)
        for _ in range(4):
            prepared(*(torch.randn(x.shape, generator=generator) for x in example))
        converted = convert_pt2e(prepared)
    return torch.export.export(converted, example), example
