#include "qatfold/passes/quantize_conv_bias.h"

#include <cstdint>
#include <limits>

#include "qatfold/numerics/bias_fold.h"
#include "qatfold/program/payload.h"

namespace qatfold::passes {
namespace {

using program::Argument;
using program::ScalarType;
using program::TensorMeta;

constexpr std::int64_t kInt32Min = QuantizeConvBias::kQuantMin;
constexpr std::int64_t kInt32Max = QuantizeConvBias::kQuantMax;
static_assert(kInt32Min == std::numeric_limits<std::int32_t>::min() &&
              kInt32Max == std::numeric_limits<std::int32_t>::max());

// Output channels of a conv from its output shape: dim 1 when batched (the
// output has the weight's rank), else dim 0; nullopt when that dimension is
// symbolic (a dynamic batch or length leaves it static).
std::optional<std::int64_t> outputChannels(const graph::Node& conv, const graph::Value& weight) {
  const TensorMeta* out = conv.output()->meta();
  const TensorMeta* w = weight.meta();
  if (out == nullptr || w == nullptr || out->rank() == 0) return std::nullopt;
  const bool batched = out->rank() == w->rank();
  if (batched && out->rank() < 2) return std::nullopt;
  return out->size(batched ? 1 : 0);
}

program::Metadata copiedMetadata(const graph::Node& source) {
  return source.metadata().subset({"stack_trace", "nn_module_stack"});
}

}  // namespace

bool QuantizeConvBias::hasQuantizedInputs(const graph::Node& conv) {
  if (!isConvolution(conv)) return false;
  graph::Value* input_value = conv.tryGetInput("input");
  auto input = quant::readAffine(input_value ? input_value->producer() : nullptr);
  graph::Value* weight_value = conv.tryGetInput("weight");
  auto weight = quant::readAffine(weight_value ? weight_value->producer() : nullptr);
  return input && input->op == quant::Op::kDequantizePerTensor && weight && quant::isDequantize(weight->op);
}

QuantizeConvBias::MatchResult QuantizeConvBias::match(graph::Node& conv) const {
  if (!isConvolution(conv)) return "not a convolution";
  if (conv.outputs().size() != 1) return "convolution without a single output";
  // Cheap structure first: dequantized input and weight, the bias slot.
  auto input = quant::readAffine(conv.tryGetInput("input") ? conv.tryGetInput("input")->producer() : nullptr);
  if (!input || input->op != quant::Op::kDequantizePerTensor) return "input is not dequantized per tensor";
  graph::Value* weight_value = conv.tryGetInput("weight");
  auto weight = quant::readAffine(weight_value ? weight_value->producer() : nullptr);
  if (!weight || !quant::isDequantize(weight->op)) return "weight is not dequantized";

  Match m;
  m.conv = &conv;
  const graph::Operand* bias_operand = conv.tryGetOperand("bias");
  graph::Value* bias = conv.tryGetInput("bias");
  if (bias_operand == nullptr || bias_operand->argument().isNone()) {
    m.action = Action::kAddZeroBias;
  } else if (bias == nullptr) {
    return "bias operand has an unexpected form";
  } else if (bias->producer() != nullptr && quant::isDequantize(quant::opOf(*bias->producer()))) {
    return "bias is already quantized";
  } else if (bias->producer() != nullptr && bias->producer()->target() == op::kZerosLike) {
    // zeros_like(b), Samsung's quantizer's conv bias under a QAT chain: a
    // constant expression whose value is zeros, whatever b holds.
    m.action = Action::kAddZeroBias;
  } else if (!isConstantTensor(bias)) {
    return "bias is computed, not a constant";
  } else if (bias->payload()->meta.tensor_meta->dtype != ScalarType::kFloat32) {
    return "bias has dtype " + program::scalarTypeName(bias->payload()->meta.tensor_meta->dtype) + ", not float32";
  } else {
    m.action = Action::kQuantizeFloatBias;
    m.float_bias = bias;
    m.replace_in_place = bias->useCount() == 1;
  }

  auto channels = outputChannels(conv, *weight_value);
  if (!channels || *channels <= 0) {
    return conv.output()->meta() != nullptr && conv.output()->meta()->symbolic
               ? "its output channel dimension is symbolic (exported as dynamic)"
               : "output channel count is unknown";
  }
  m.channels = *channels;

  // Data: the bias scale.
  if (!weight->per_channel) {
    m.scale = numerics::biasScale(input->scale, weight->scale);
    if (!(m.scale > 0) || !std::isfinite(m.scale)) return "bias scale s_in * s_w is not a positive finite number";
  } else {
    if (!isConstantTensor(weight->scales)) return "per-channel weight scales are not constant";
    const TensorView scales = weight->scales->payload()->view();
    if (scales.meta().dtype != ScalarType::kFloat32) return "per-channel weight scales are not float32";
    if (scales.meta().numel() != m.channels || weight->axis != 0) {
      return "per-channel weight scales do not run along the output channels";
    }
    m.per_channel = true;
    m.scales = numerics::biasScales(input->scale, scales.values<float>());
    for (float product : m.scales) {
      if (!(product > 0) || !std::isfinite(product)) return "a per-channel bias scale is not a positive finite number";
    }
  }

  if (m.action == Action::kAddZeroBias) {
    m.values.assign(static_cast<std::size_t>(m.channels), 0);
  } else {
    const TensorView view = m.float_bias->payload()->view();
    if (view.meta().numel() != m.channels) return "bias length does not match the output channels";
    const std::vector<float> values = view.values<float>();
    std::vector<std::int64_t> zeros(m.per_channel ? m.scales.size() : 1, 0);
    numerics::QuantizedBias quantized =
        m.per_channel ? numerics::quantizeBiasPerChannel(values, m.scales, zeros, kInt32Min, kInt32Max)
                      : numerics::quantizeBiasPerTensor(values, m.scale, 0, kInt32Min, kInt32Max);
    m.values = std::move(quantized.values);
  }
  return m;
}

void QuantizeConvBias::rewrite(graph::Graph& graph, const Match& m) const {
  graph::Node& conv = *m.conv;
  const TensorMeta bias_meta = TensorMeta::contiguous(ScalarType::kInt32, {m.channels});
  auto storage = std::make_shared<Storage>(encodeValues(m.values));

  graph::Value* int_bias = nullptr;
  if (m.action == Action::kQuantizeFloatBias && m.replace_in_place) {
    graph.replaceTensorData(m.float_bias, bias_meta, storage);
    int_bias = m.float_bias;
  } else {
    int_bias = graph.addConstantTensor(program::InputKind::kParameter, conv.name() + "_bias",
                                       "p_" + conv.name() + "_bias", bias_meta, storage);
  }

  graph::NodeSpec dequantize;
  dequantize.name_hint = conv.name() + "_bias_dequantize";
  dequantize.output_meta = TensorMeta::contiguous(ScalarType::kFloat32, {m.channels});
  dequantize.metadata = copiedMetadata(conv);
  dequantize.metadata_source = &conv;
  if (!m.per_channel) {
    dequantize.target = std::string(quant::targetOf(quant::Op::kDequantizePerTensor));
    dequantize.inputs = {{"input", int_bias},
                         {"scale", Argument::real(m.scale)},
                         {"zero_point", Argument::integer(0)},
                         {"quant_min", Argument::integer(kInt32Min)},
                         {"quant_max", Argument::integer(kInt32Max)},
                         {"dtype", Argument::scalarType(ScalarType::kInt32)}};
  } else {
    graph::Value* scales = graph.addConstantTensor(
        program::InputKind::kParameter, conv.name() + "_bias_scale", "p_" + conv.name() + "_bias_scale",
        TensorMeta::contiguous(ScalarType::kFloat32, {m.channels}), std::make_shared<Storage>(encodeValues(m.scales)));
    graph::Value* zero_points = graph.addConstantTensor(
        program::InputKind::kParameter, conv.name() + "_bias_zero_point", "p_" + conv.name() + "_bias_zero_point",
        TensorMeta::contiguous(ScalarType::kInt32, {m.channels}),
        std::make_shared<Storage>(encodeValues(std::vector<std::int32_t>(static_cast<std::size_t>(m.channels), 0))));
    dequantize.target = std::string(quant::targetOf(quant::Op::kDequantizePerChannel));
    dequantize.inputs = {{"input", int_bias},
                         {"scales", scales},
                         {"zero_points", zero_points},
                         {"axis", Argument::integer(0)},
                         {"quant_min", Argument::integer(kInt32Min)},
                         {"quant_max", Argument::integer(kInt32Max)},
                         {"dtype", Argument::scalarType(ScalarType::kInt32)}};
  }
  graph::Node* dq = graph.insertNodeBefore(&conv, dequantize);
  graph.setInput(&conv, "bias", dq->output(), "weight");
}

const char* QuantizeConvBias::describe(const Match& match) {
  return match.action == Action::kAddZeroBias ? "added a zero int32 bias" : "quantized the float bias to int32";
}

bool QuantizeConvBias::run(graph::Graph& graph, FoldReport& report) const {
  bool changed = false;
  for (graph::Node* node : graph.nodes()) {
    if (!isConvolution(*node)) continue;
    MatchResult result = match(*node);
    if (const auto* m = std::get_if<Match>(&result)) {
      rewrite(graph, *m);
      report.prepared_biases.push_back({node->name(), describe(*m)});
      changed = true;
    }
  }
  return changed;
}

}  // namespace qatfold::passes
