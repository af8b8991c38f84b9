"""QAT models for qatfold's differential tests against ExecuTorch's pass.

Each entry builds a small float model and an example input; the tests run
the Cadence QAT flow (zoo/flows.export_qat_cadence) on it,
save the exported program with torch.export.save, and fold it both with
qatfold and with ExecuTorch's FuseQATConvBN.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class ConvBN(nn.Module):
    def __init__(self, dims: int = 2, cin: int = 3, cout: int = 8, bias: bool = False, eps: float = 1e-5,
                 **conv) -> None:
        super().__init__()
        conv_cls = {1: nn.Conv1d, 2: nn.Conv2d}[dims]
        bn_cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[dims]
        conv.setdefault("kernel_size", 3)
        self.conv = conv_cls(cin, cout, bias=bias, **conv)
        self.bn = bn_cls(cout, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class Chain(nn.Module):
    """Several conv-BN-ReLU blocks in a row."""

    def __init__(self, widths: tuple[int, ...] = (3, 8, 16, 8), bias: tuple[bool, ...] = (False, True, False)) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ConvBN(cin=a, cout=b, bias=has_bias, padding=1) for a, b, has_bias in zip(widths, widths[1:], bias)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i + 1 < len(self.blocks):
                x = torch.relu(x)
        return x


class Residual(nn.Module):
    """stem conv-BN-ReLU, then a basic residual block."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = ConvBN(cin=3, cout=8, padding=1)
        self.a = ConvBN(cin=8, cout=8, padding=1)
        self.b = ConvBN(cin=8, cout=8, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        y = self.b(torch.relu(self.a(x)))
        return torch.relu(x + y)


class BasicBlock(nn.Module):
    """A ResNet basic block of bias-less convs: stem conv-BN-ReLU, then
    conv-BN-ReLU, conv-BN, the skip add and a ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = ConvBN(cin=3, cout=8, padding=1)
        self.a = ConvBN(cin=8, cout=8, padding=1)
        self.b = ConvBN(cin=8, cout=8, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        return torch.relu(x + self.b(torch.relu(self.a(x))))


class Depthwise(nn.Module):
    """Depthwise then pointwise, each with BN (MobileNet style)."""

    def __init__(self) -> None:
        super().__init__()
        self.depthwise = ConvBN(cin=8, cout=8, groups=8, padding=1)
        self.pointwise = ConvBN(cin=8, cout=16, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(torch.relu(self.depthwise(x)))


class TwoBranches(nn.Module):
    """Two parallel conv-BN branches over one input, summed."""

    def __init__(self) -> None:
        super().__init__()
        self.left = ConvBN(cin=4, cout=8, padding=1, bias=True)
        self.right = ConvBN(cin=4, cout=8, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.left(x) + self.right(x)


class KeywordSpotter(nn.Module):
    """An audio-style 1-D CNN (the demo's): three conv-BN blocks, a grouped one
    in the middle, biases on the last two."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            nn.Conv1d(8, 16, 5, padding=2, bias=False), nn.BatchNorm1d(16), nn.ReLU(),
            nn.Conv1d(16, 16, 3, padding=1, groups=4), nn.BatchNorm1d(16), nn.ReLU(),
            nn.Conv1d(16, 8, 1), nn.BatchNorm1d(8),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so C is far from 0."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) * 2 + 0.1)
            with torch.no_grad():
                module.weight.copy_(torch.randn(n, generator=generator) * 0.5 + 1)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.3)
    return model


ZOO: dict[str, Callable[[], tuple[nn.Module, tuple]]] = {
    "conv2d_nobias": lambda: (ConvBN(padding=1), (torch.randn(2, 3, 12, 12),)),
    "conv2d_bias": lambda: (ConvBN(bias=True, padding=1), (torch.randn(2, 3, 12, 12),)),
    "conv1d_nobias": lambda: (ConvBN(dims=1, cin=4, padding=1), (torch.randn(2, 4, 32),)),
    "conv1d_bias": lambda: (ConvBN(dims=1, cin=4, bias=True), (torch.randn(2, 4, 32),)),
    "chain3": lambda: (Chain(), (torch.randn(2, 3, 12, 12),)),
    "residual": lambda: (Residual(), (torch.randn(2, 3, 12, 12),)),
    "depthwise": lambda: (Depthwise(), (torch.randn(2, 8, 12, 12),)),
    "grouped": lambda: (ConvBN(cin=8, cout=8, groups=2, padding=1, bias=True), (torch.randn(2, 8, 12, 12),)),
    "strided": lambda: (ConvBN(cin=3, cout=8, stride=2, padding=1), (torch.randn(2, 3, 16, 16),)),
    "dilated": lambda: (ConvBN(cin=3, cout=8, dilation=2, padding=2, bias=True), (torch.randn(2, 3, 16, 16),)),
    "eps_1e-3": lambda: (ConvBN(cin=3, cout=8, eps=1e-3, padding=1), (torch.randn(2, 3, 12, 12),)),
    "two_branches": lambda: (TwoBranches(), (torch.randn(2, 4, 10, 10),)),
    "keyword_spotter": lambda: (KeywordSpotter(), (torch.randn(4, 8, 64),)),
    "basic_block": lambda: (BasicBlock(), (torch.randn(2, 3, 12, 12),)),
}


def dynamic_shapes(kind: str) -> tuple:
    """The dynamic_shapes of a one-input model for `kind`: "batch" (dim 0),
    "length" (dim 2, 1-D audio), "both", or "bounded" (a batch Dim with a
    min and a max)."""
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length", min=16, max=512)
    return ({"batch": {0: batch}, "length": {2: length}, "both": {0: batch, 2: length},
             "bounded": {0: torch.export.Dim("batch", min=1, max=8)}}[kind],)


def build(name: str, seed: int = 0) -> tuple[nn.Module, tuple]:
    torch.manual_seed(seed)
    model, example = ZOO[name]()
    return randomize_bn(model, seed + 100), example
