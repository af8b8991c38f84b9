"""One layer + BatchNorm per kind, for the quantizer x layer table
(tools/quantizer_table.py) and the per-quantizer tests: the layers torchao's
QAT fusion gives a simulation chain (conv1d, conv2d, depthwise, transposed)
and the ones it leaves a plain BatchNorm behind (conv2d with padding="same",
conv3d, linear + BatchNorm1d). Each alone, and followed by a quantized layer
of the same kind, so the BatchNorm's output is quantized for a consumer."""

from __future__ import annotations

import torch
from torch import nn

from zoo.models import randomize_bn

KINDS = ("conv1d", "conv2d", "depthwise", "same", "transposed", "conv3d", "linear")


def _layer(kind: str, cin: int, cout: int) -> tuple[nn.Module, nn.Module, tuple[int, ...]]:
    """(layer, its BatchNorm, the input shape for a batch of 2)."""
    if kind == "conv1d":
        return nn.Conv1d(cin, cout, 3, padding=1), nn.BatchNorm1d(cout), (2, cin, 16)
    if kind == "conv2d":
        return nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), (2, cin, 8, 8)
    if kind == "depthwise":
        return nn.Conv2d(cin, cin, 3, padding=1, groups=cin), nn.BatchNorm2d(cin), (2, cin, 8, 8)
    if kind == "same":
        return nn.Conv2d(cin, cout, 3, padding="same", bias=False), nn.BatchNorm2d(cout), (2, cin, 8, 8)
    if kind == "transposed":
        return nn.ConvTranspose2d(cin, cout, 3, stride=2), nn.BatchNorm2d(cout), (2, cin, 5, 5)
    if kind == "conv3d":
        return nn.Conv3d(cin, cout, 3, padding=1), nn.BatchNorm3d(cout), (2, cin, 4, 6, 6)
    if kind == "linear":
        return nn.Linear(cin, cout), nn.BatchNorm1d(cout), (2, cin)
    raise ValueError(f"unknown layer kind {kind!r}; one of {', '.join(KINDS)}")


class LayerBN(nn.Module):
    """`kind` + BatchNorm (+ ReLU), then, if `followed`, another `kind` layer."""

    def __init__(self, kind: str, followed: bool) -> None:
        super().__init__()
        self.layer, self.bn, shape = _layer(kind, 4, 4)
        self.input_shape = shape
        next_kind = "conv2d" if kind in ("depthwise", "same", "transposed") else kind
        self.next = _layer(next_kind, 4, 4)[0] if followed else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.layer(x)))
        return self.next(x) if self.next is not None else x


def build(kind: str, followed: bool, seed: int = 0) -> tuple[nn.Module, tuple]:
    """The model with BatchNorm statistics far from identity, and an example input."""
    torch.manual_seed(seed)
    model = randomize_bn(LayerBN(kind, followed), seed)
    return model, (torch.randn(model.input_shape),)


def name(kind: str, followed: bool) -> str:
    return f"{kind}+bn{'+next' if followed else ''}"


class Stack2d(nn.Module):
    """The 2-D kinds in one network: conv2d, depthwise and transposed (each
    given a QAT chain), then conv2d with padding="same" (no chain, no bias),
    each with BatchNorm and ReLU, then a plain conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.bn_depthwise = nn.BatchNorm2d(8)
        self.up = nn.ConvTranspose2d(8, 8, 2, stride=2)
        self.bn_up = nn.BatchNorm2d(8)
        self.same = nn.Conv2d(8, 8, 3, padding="same", bias=False)
        self.bn_same = nn.BatchNorm2d(8)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        x = torch.relu(self.bn_depthwise(self.depthwise(x)))
        x = torch.relu(self.bn_up(self.up(x)))
        x = torch.relu(self.bn_same(self.same(x)))
        return self.head(x)


class Conv1dHead(nn.Module):
    """conv1d + BatchNorm + ReLU (a chain), average over time, linear +
    BatchNorm1d (no chain): an audio model's shape. (Pooled, not
    mean(dim=2): Arm 1.4.0's DecomposeMeanDimPass fails on a loaded program's
    mean, with or without qatfold.)"""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3, padding=1)
        self.bn = nn.BatchNorm1d(8)
        self.fc = nn.Linear(8, 6)
        self.bn_fc = nn.BatchNorm1d(6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        return self.bn_fc(self.fc(nn.functional.adaptive_avg_pool1d(x, 1).flatten(1)))


class Conv3dPair(nn.Module):
    """conv3d + BatchNorm3d + ReLU (no chain), then a plain conv3d."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm3d(4)
        self.next = nn.Conv3d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.next(torch.relu(self.bn(self.conv(x))))


# The networks above with an example batch of 2, BatchNorm statistics far from identity.
NETWORKS = {
    "stack2d": (Stack2d, (2, 3, 8, 8)),
    "conv1d_head": (Conv1dHead, (2, 4, 16)),
    "conv3d_pair": (Conv3dPair, (2, 2, 4, 6, 6)),
}


def network(name: str, seed: int = 0) -> tuple[nn.Module, tuple]:
    cls, shape = NETWORKS[name]
    torch.manual_seed(seed)
    model = randomize_bn(cls(), seed)
    return model, (torch.randn(shape),)
