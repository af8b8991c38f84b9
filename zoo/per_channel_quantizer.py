"""A small QAT quantizer with per-channel weights and an INT32 bias.

The Cadence quantizer quantizes conv weights per tensor. This one annotates
conv1d/conv2d the same way (int8 activations in and out, an int32 bias whose
scale is derived from the input and weight scales) but with per-channel
symmetric weights, so the bias is quantized per channel too:
s_bias[c] = s_in * s_w[c]. prepare_qat_pt2e + convert_pt2e with it leave the
QAT chain qatfold folds channel by channel.
"""

from __future__ import annotations

import torch
from torchao.quantization.pt2e import (
    FusedMovingAvgObsFakeQuantize,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
)
from torchao.quantization.pt2e.quantizer import (
    DerivedQuantizationSpec,
    QuantizationAnnotation,
    QuantizationSpec,
    Quantizer,
)

CONVS = (torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default)

ACTIVATION = QuantizationSpec(
    dtype=torch.int8, quant_min=-128, quant_max=127, qscheme=torch.per_tensor_affine,
    observer_or_fake_quant_ctr=FusedMovingAvgObsFakeQuantize.with_args(observer=MovingAverageMinMaxObserver),
)
WEIGHT = QuantizationSpec(
    dtype=torch.int8, quant_min=-127, quant_max=127, qscheme=torch.per_channel_symmetric, ch_axis=0,
    observer_or_fake_quant_ctr=FusedMovingAvgObsFakeQuantize.with_args(observer=MovingAveragePerChannelMinMaxObserver),
)


def _bias_qparams(observers):
    input_scale, _ = observers[0].calculate_qparams()
    weight_scales, _ = observers[1].calculate_qparams()
    scales = (input_scale * weight_scales).to(torch.float32)
    return scales, torch.zeros_like(scales, dtype=torch.int32)


class PerChannelConvQuantizer(Quantizer):
    def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
        for node in model.graph.nodes:
            if node.op != "call_function" or node.target not in CONVS:
                continue
            x, weight = node.args[0], node.args[1]
            qspecs = {x: ACTIVATION, weight: WEIGHT}
            bias = node.args[2] if len(node.args) > 2 else None
            if isinstance(bias, torch.fx.Node):
                qspecs[bias] = DerivedQuantizationSpec(
                    derived_from=[(x, node), (weight, node)], derive_qparams_fn=_bias_qparams,
                    dtype=torch.int32, quant_min=-(2**31), quant_max=2**31 - 1,
                    qscheme=torch.per_channel_symmetric, ch_axis=0,
                )
            node.meta["quantization_annotation"] = QuantizationAnnotation(
                input_qspec_map=qspecs, output_qspec=ACTIVATION, _annotated=True)
        return model

    def validate(self, model: torch.fx.GraphModule) -> None:
        pass
