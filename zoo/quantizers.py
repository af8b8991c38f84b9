"""Every quantizer ExecuTorch 1.4.0 ships with a QAT config that imports
here, by name, made as a user makes it (each one's own QAT config), for the
quantizer x layer table (tools/quantizer_table.py) and the tests.

NXP's quantizer imports its vendor SDK at load time and is not here (its
shape is a text graph in tests/cpp). MediaTek's package imports its SDK
in its __init__ (partitioner, backend), its quantizer module does not: it
is loaded here without the package's __init__. Cortex-M's has no
QAT config: its PTQ config goes through the QAT flow. Qualcomm's imports without its SDK
when QNN_SDK_ROOT names a path that does not exist (set below if unset)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("QNN_SDK_ROOT", "/nonexistent/qnn-sdk")


def _arm(spec: str, a16w8: bool = False) -> Callable[[], object]:
    def make():
        from executorch.backends.arm.quantizer import (
            TOSAQuantizer,
            get_symmetric_a16w8_quantization_config,
            get_symmetric_quantization_config,
        )
        from executorch.backends.arm.tosa.compile_spec import TosaCompileSpec

        quantizer = TOSAQuantizer(TosaCompileSpec(spec))
        config = get_symmetric_a16w8_quantization_config if a16w8 else get_symmetric_quantization_config
        quantizer.set_global(config(is_qat=True))
        return quantizer

    return make


def _arm_vgf():
    from executorch.backends.arm.quantizer import VgfQuantizer, get_symmetric_quantization_config
    from executorch.backends.arm.vgf.compile_spec import VgfCompileSpec

    quantizer = VgfQuantizer(VgfCompileSpec())
    quantizer.set_global(get_symmetric_quantization_config(is_qat=True))
    return quantizer


def _qualcomm(per_channel: bool) -> Callable[[], object]:
    def make():
        from executorch.backends.qualcomm.quantizer.quantizer import QnnQuantizer, QuantDtype

        quantizer = QnnQuantizer()
        quantizer.set_default_quant_config(QuantDtype.use_8a8w, is_qat=True, is_conv_per_channel=per_channel,
                                           is_linear_per_channel=per_channel)
        return quantizer

    return make


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


def _mediatek():
    import importlib.util
    import sys
    import types

    package = "executorch.backends.mediatek"
    if package not in sys.modules:  # the package without its __init__, which imports the SDK
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.submodule_search_locations is not None
        module = types.ModuleType(package)
        module.__path__ = list(spec.submodule_search_locations)
        sys.modules[package] = module
    from executorch.backends.mediatek.quantizer import NeuropilotQuantizer, Precision

    quantizer = NeuropilotQuantizer()
    quantizer.setup_precision(Precision.A8W8)
    quantizer._is_qat = True  # 1.4.0 has no setter for it ("TODO: Provide setter functions")
    return quantizer


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
    # What a user of this quantizer must do to the model first, or None.
    prepare: Callable[[object], None] | None = None


def _drop_batch_counters(model) -> None:
    """Core ML's and MediaTek's quantizers (1.4.0) annotate BatchNorm's
    num_batches_tracked counter update (add_), and QAT then fails fake-quantizing a Long tensor
    ("fake_quantize_tensor_cachemask_kernel_type_handling" not implemented
    for 'Long'). With a momentum set the counter is unused: dropping it is
    the workaround, and changes nothing the model computes."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.momentum is not None:
            module.num_batches_tracked = None


QUANTIZERS: dict[str, Entry] = {
    "arm-tosa-int": Entry(_arm("TOSA-1.0+INT")),
    "arm-ethos-u55": Entry(_arm("TOSA-1.0+INT+u55")),
    "arm-tosa-a16w8": Entry(_arm("TOSA-1.0+INT+int16", a16w8=True)),
    "arm-vgf": Entry(_arm_vgf),
    "qualcomm-8a8w": Entry(_qualcomm(False)),
    # Per-channel weights: linear and conv3d outputs reach their batch_norm
    # through two quantize/dequantize pairs (passes/requantize_pair.h).
    "qualcomm-8a8w-per-channel": Entry(_qualcomm(True)),
    "samsung-a8w8": Entry(_samsung),
    "coreml": Entry(_coreml, slow=True, prepare=_drop_batch_counters),
    "cortex-m": Entry(_cortex_m, check_guards=False),
    "mediatek-a8w8": Entry(_mediatek, prepare=_drop_batch_counters),
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
    if entry.prepare is not None:
        entry.prepare(model)
    torch.manual_seed(0)
    converted = qat_convert(model, example, entry.make(), check_guards=entry.check_guards)
    return torch.export.export(converted, example)
