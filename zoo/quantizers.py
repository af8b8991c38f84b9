"""Every quantizer ExecuTorch 1.4.0 ships with a QAT config that imports
here, by name, made as a user makes it (each one's own QAT config), for the
quantizer x layer table (tools/quantizer_table.py) and the tests.

NXP's and MediaTek's quantizers import their vendor SDKs at load time and
are not here (their shapes are text graphs in tests/cpp). Cortex-M's has no
QAT config: its PTQ config goes through the QAT flow. Qualcomm's imports without its SDK
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
    slow: bool = False  # minutes a program (Core ML's QAT)
    check_guards: bool = True  # False: capture without torch's guards submodule (Cortex-M's passes refuse it)


QUANTIZERS: dict[str, Entry] = {
    "arm-tosa-int": Entry(_arm("TOSA-1.0+INT")),
    "arm-ethos-u55": Entry(_arm("TOSA-1.0+INT+u55")),
    "qualcomm-8a8w": Entry(_qualcomm),
    "samsung-a8w8": Entry(_samsung),
    "coreml": Entry(_coreml, slow=True),
    "cortex-m": Entry(_cortex_m, check_guards=False),
    "cadence-default": Entry(_cadence("CadenceDefaultQuantizer")),
    "cadence-fused-conv-relu": Entry(_cadence("CadenceFusedConvReluQuantizer")),
    "cadence-wakeword": Entry(_cadence("CadenceWakeWordQuantizer")),
    "xnnpack-per-channel": Entry(_xnnpack(True)),
    "xnnpack-per-tensor": Entry(_xnnpack(False)),
}


def export(quantizer: str, model, example: tuple):
    """The program `quantizer` makes of `model` through the QAT flow (a few
    steps; Cortex-M's config has no QAT variant, its PTQ one is trained the
    same way, as a user who fine-tunes for it would), converted and exported."""
    import torch

    from zoo.flows import qat_convert

    entry = QUANTIZERS[quantizer]
    torch.manual_seed(0)
    converted = qat_convert(model, example, entry.make(), check_guards=entry.check_guards)
    return torch.export.export(converted, example)
