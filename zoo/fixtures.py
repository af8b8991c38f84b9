"""The models behind qatfold's test archives.

Shared by tools/make_fixtures.py (which writes tests/fixtures/*.pt2) and the
Python tests (which regenerate the archives and compare them with the
committed ones). Everything is seeded, so the same torch gives the same
tensors.
"""

from __future__ import annotations

import torch

from zoo.flows import export_float, export_qat_cadence, export_qat_dynamic


class FloatCNN(torch.nn.Module):
    """conv -> bn -> relu -> conv -> pool -> linear, in float."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, stride=2)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.conv2(x).mean(dim=(2, 3))
        return self.fc(x)


class QATCNN(torch.nn.Module):
    """Two conv+BN blocks: the first biasless, the second with a conv bias."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = torch.nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(x))


class TiedWeights(torch.nn.Module):
    """One parameter used by two linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(6, 6)
        self.b = torch.nn.Linear(6, 6)
        self.b.weight = self.a.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


class WithBuffers(torch.nn.Module):
    """Persistent and non-persistent buffers, one a view of another."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.linspace(0.5, 2.0, 6))
        self.register_buffer("offset", torch.arange(6, dtype=torch.float32), persistent=False)
        self.register_buffer("table", torch.arange(12, dtype=torch.int64).reshape(3, 4))
        self.linear = torch.nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * self.scale + self.offset + self.table.sum().float()


class WithLiftedConstants(torch.nn.Module):
    """Plain tensor attributes, which export lifts into tensor constants."""

    def __init__(self) -> None:
        super().__init__()
        self.mask = torch.tensor([1.0, 0.0, 1.0, 0.5, -1.0, 2.0])
        self.shift = torch.tensor([3, -2, 7, 0, 1, 5], dtype=torch.int32)
        self.linear = torch.nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * self.mask + self.shift.float()


def fixture_programs() -> dict[str, torch.export.ExportedProgram]:
    """Every committed fixture, by file stem. Made on one torch thread: QAT
    training sums in an order that depends on the thread count, and the
    tests regenerate these wherever they run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fixture_programs()
    finally:
        torch.set_num_threads(threads)


def _fixture_programs() -> dict[str, torch.export.ExportedProgram]:
    torch.manual_seed(0)
    programs = {}
    programs["float_cnn"] = export_float(FloatCNN(), (torch.randn(1, 3, 16, 16),))
    torch.manual_seed(0)
    programs["qat_cadence_cnn"] = export_qat_cadence(QATCNN(), (torch.randn(2, 3, 16, 16),))
    # The same program in core ATen: convolution + _native_batch_norm_legit_no_training.
    programs["qat_cadence_cnn_decomposed"] = programs["qat_cadence_cnn"].run_decompositions()
    # XNNPACK QAT, per-channel: nothing for qatfold to fold, float conv biases.
    from zoo.xnnpack_models import export_xnnpack

    programs["qat_xnnpack_cnn"] = export_xnnpack("net2d:qat_per_channel")[0]
    # Cadence QAT with a dynamic batch and length (1-D audio): symbolic sizes.
    from executorch.backends.cadence.aot.quantizer.quantizer import CadenceDefaultQuantizer

    from zoo.models import build as build_zoo_model
    from zoo.models import dynamic_shapes

    model, example = build_zoo_model("keyword_spotter")
    programs["qat_cadence_dynamic"] = export_qat_dynamic(model, example, CadenceDefaultQuantizer(is_qat=True),
                                                         dynamic_shapes("both"))
    torch.manual_seed(0)
    programs["tied_weights"] = export_float(TiedWeights(), (torch.randn(2, 6),))
    torch.manual_seed(0)
    programs["buffers"] = export_float(WithBuffers(), (torch.randn(2, 6),))
    torch.manual_seed(0)
    programs["lifted_constants"] = export_float(WithLiftedConstants(), (torch.randn(2, 6),))
    return programs
