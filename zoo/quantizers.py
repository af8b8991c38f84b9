"""Every quantizer ExecuTorch 1.4.0 ships with a QAT config that imports
here, by name, made as a user makes it (each one's own QAT config), for the
quantizer x layer table (tools/quantizer_table.py) and the tests.

NXP's and MediaTek's quantizers import their vendor SDKs at load time and
are not here (their shapes are text graphs in tests/cpp). Cortex-M's has no
QAT config: its PTQ config, calibrated. Qualcomm's imports without its SDK
when QNN_SDK_ROOT names a path that does not exist (set below if unset)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("QNN_SDK_ROOT", "/nonexistent/qnn-sdk")


def _arm(spec: str) -> Callable[[], object]:
    def make():
        from executorch.backends.arm.quantizer import TOSAQuantizer, get_symmetric_quantization_config
        from executorch.backends.arm.tosa.compile_spec import TosaCompileSpec

        quantizer = TOSAQuantizer(TosaCompileSpec(spec))
        quantizer.set_global(get_symmetric_quantization_config(is_qat=True))
        return quantizer

    return make


def _qualcomm():
    from executorch.backends.qualcomm.quantizer.quantizer import QnnQuantizer, QuantDtype

    quantizer = QnnQuantizer()
    quantizer.set_default_quant_config(QuantDtype.use_8a8w, is_qat=True)
    return quantizer


def _samsung():
    from executorch.backends.samsung.quantizer import EnnQuantizer, Precision

    quantizer = EnnQuantizer()
    quantizer.setup_quant_params(Precision.A8W8, is_qat=True)
    return quantizer


def _coreml():
    import coremltools as ct
    from executorch.backends.apple.coreml.quantizer import CoreMLQuantizer

    config = ct.optimize.torch.quantization.LinearQuantizerConfig.from_dict({"global_config": {
        "quantization_scheme": "symmetric", "activation_dtype": "quint8", "weight_dtype": "qint8",
        "weight_per_channel": True}})
    return CoreMLQuantizer(config)


def _cortex_m():
    from executorch.backends.cortex_m.quantizer.quantizer import CortexMQuantizer

    return CortexMQuantizer()


def _cadence(name: str) -> Callable[[], object]:
    def make():
        from executorch.backends.cadence.aot.quantizer import quantizer as cadence

        return getattr(cadence, name)(is_qat=True)

    return make


def _xnnpack(per_channel: bool) -> Callable[[], object]:
    def make():
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )

        return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=per_channel,
                                                                               is_qat=True))

    return make


@dataclass(frozen=True)
class Entry:
    make: Callable[[], object]
    qat: bool = True  # else PTQ: prepare_pt2e and calibration
    slow: bool = False  # minutes a program (Core ML's QAT)


QUANTIZERS: dict[str, Entry] = {
    "arm-tosa-int": Entry(_arm("TOSA-1.0+INT")),
    "arm-ethos-u55": Entry(_arm("TOSA-1.0+INT+u55")),
    "qualcomm-8a8w": Entry(_qualcomm),
    "samsung-a8w8": Entry(_samsung),
    "coreml": Entry(_coreml, slow=True),
    "cortex-m": Entry(_cortex_m, qat=False),
    "cadence-default": Entry(_cadence("CadenceDefaultQuantizer")),
    "cadence-fused-conv-relu": Entry(_cadence("CadenceFusedConvReluQuantizer")),
    "cadence-wakeword": Entry(_cadence("CadenceWakeWordQuantizer")),
    "xnnpack-per-channel": Entry(_xnnpack(True)),
    "xnnpack-per-tensor": Entry(_xnnpack(False)),
}


def export(quantizer: str, model, example: tuple):
    """The program `quantizer` makes of `model`: QAT (a few steps) or PTQ
    (calibrated on 4 batches), converted and exported."""
    import torch

    from zoo.flows import qat_convert

    entry = QUANTIZERS[quantizer]
    torch.manual_seed(0)
    if entry.qat:
        converted = qat_convert(model, example, entry.make())
    else:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        # Without the guards submodule torch 2.13 adds: Cortex-M's annotation
        # passes run the graph and take no call_module.
        captured = torch.export.export(model.eval(), example, strict=True).module(check_guards=False)
        prepared = prepare_pt2e(captured, entry.make())
        generator = torch.Generator().manual_seed(1)
        for _ in range(4):
            prepared(*(torch.randn(x.shape, generator=generator) for x in example))
        converted = convert_pt2e(prepared)
    return torch.export.export(converted, example)
