#include "qatfold/passes/fold_batch_norm_into_weight_scales.h"

#include <cmath>
#include <cstdio>

#include "qatfold/numerics/bias_fold.h"
#include "qatfold/numerics/scale_fold.h"
#include "qatfold/passes/batch_norm_tail.h"
#include "qatfold/passes/fold_report.h"
#include "qatfold/passes/layer_output.h"
#include "qatfold/passes/patterns.h"
#include "qatfold/passes/quantize_conv_bias.h"
#include "qatfold/program/payload.h"

namespace qatfold::passes {
namespace {

using program::ScalarType;

constexpr std::string_view kRelu = "torch.ops.aten.relu.default";

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.7g", value);
  return text;
}

numerics::AffineRange rangeOf(const quant::AffineQuantization& q) {
  return {q.scale, q.zero_point, q.quant_min, q.quant_max};
}

// The quantize that reads `value` alone, or null.
graph::Node* soleQuantize(const graph::Value& value) {
  if (value.isGraphOutput()) return nullptr;
  const std::vector<graph::Node*> users = value.users();
  if (users.size() != 1 || quant::opOf(*users[0]) != quant::Op::kQuantizePerTensor) return nullptr;
  return users[0];
}

// The quantize QAT trained on the batch_norm's output: right after it, or
// after its ReLU; null if none.
graph::Node* trainedQuantize(const graph::Node& batch_norm, bool& after_relu) {
  const graph::Value& out = *batch_norm.output(0);
  after_relu = false;
  if (graph::Node* q = soleQuantize(out)) return q;
  const std::vector<graph::Node*> users = out.users();
  if (out.isGraphOutput() || users.size() != 1 || users[0]->target() != kRelu) return nullptr;
  after_relu = true;
  return soleQuantize(*users[0]->output());
}

bool isTransposed(const graph::Node& layer) {
  const program::Argument* transposed = layer.tryGetArgument("transposed");
  return layer.target().find("transpose") != std::string::npos || (transposed && transposed->asBool() == true);
}

bool isIntegerType(ScalarType type) { return type == ScalarType::kInt32 || type == ScalarType::kInt64; }

// This pass's own case, refused: listed without --explain (like a QAT
// chain), since the user can often act on it (calibration, an option).
Refusal refused(RefusalCode code, std::vector<std::string> details = {}) {
  return chainFailure(code, std::move(details));
}

}  // namespace

FoldBatchNormIntoWeightScales::MatchResult FoldBatchNormIntoWeightScales::match(graph::Node& bn) const {
  auto eval_or_why = matchEvalBatchNorm(bn);
  if (const auto* why = std::get_if<Refusal>(&eval_or_why)) return *why;
  const EvalBatchNorm& eval = std::get<EvalBatchNorm>(eval_or_why);

  // The layer and its output quantization (layer_output.h).
  auto output_or_why = findLayerOutput(bn, *eval.input);
  if (auto* why = std::get_if<Refusal>(&output_or_why)) return *why;
  const LayerOutput& output = std::get<LayerOutput>(output_or_why);
  graph::Node* layer = output.layer;
  const bool direct = output.direct();

  graph::Value* input = layer->tryGetInput("input");
  auto input_dq = quant::readAffine(input ? input->producer() : nullptr);
  if (!input_dq || input_dq->op != quant::Op::kDequantizePerTensor) {
    return refused(RefusalCode::kInputNotQuantized, {layer->name()});
  }

  const bool transposed = isTransposed(*layer);
  const program::Argument* groups = layer->tryGetArgument("groups");
  if (transposed && groups && groups->asInt().value_or(1) != 1) {
    return refused(RefusalCode::kGroupedTransposed, {layer->name()});
  }
  const std::int64_t axis = transposed ? 1 : 0;
  const auto weight_refusal = [&] {
    return refused(RefusalCode::kWeightNotPerChannelInt8, {layer->name(), std::to_string(axis)});
  };
  graph::Value* weight_out = layer->tryGetInput("weight");
  auto weight_dq = quant::readAffine(weight_out ? weight_out->producer() : nullptr);
  if (!weight_dq) return weight_refusal();
  const bool per_tensor = !weight_dq->per_channel;
  if (per_tensor && !config_.requantize_per_tensor) return refused(RefusalCode::kPerTensorWeights, {layer->name()});
  if ((!per_tensor && weight_dq->axis != axis) || weight_dq->dtype != ScalarType::kInt8 ||
      weight_out->useCount() != 1 || !isConstantTensor(weight_dq->input) ||
      (!per_tensor && (!isConstantTensor(weight_dq->scales) || !isConstantTensor(weight_dq->zero_points)))) {
    return weight_refusal();
  }
  const TensorView weight_view = weight_dq->input->payload()->view();
  const std::vector<std::int64_t>& sizes = weight_view.meta().sizes;
  if (weight_view.meta().dtype != ScalarType::kInt8 || static_cast<std::int64_t>(sizes.size()) <= axis) {
    return weight_refusal();
  }
  const std::int64_t channels = sizes[static_cast<std::size_t>(axis)];

  Match m;
  // The bias, read directly or through its dequantize; an int32 one (or none
  // in a program that encodes biases as int32) is re-derived on the new scales.
  std::optional<std::vector<float>> old_bias;
  // A bias-less layer gets an int32 one only where the program encodes its
  // biases so: XNNPACK delegates no conv1d with an int32 bias it did not make.
  bool int32_bias = config_.int32_biases;
  if (graph::Value* bias = layer->tryGetInput("bias")) {
    auto bias_dq = quant::readAffine(bias->producer());
    int32_bias = bias_dq && quant::isDequantize(bias_dq->op) && bias_dq->dtype == ScalarType::kInt32;
    std::optional<ConstantFloats> values = constantFloats(bias);
    if (!values || (values->dequantized && !int32_bias)) {
      return refused(RefusalCode::kFloatBiasNotConstant, {layer->name()});
    }
    if (static_cast<std::int64_t>(values->values.size()) != channels) {
      return refused(RefusalCode::kFloatBiasShape, {layer->name()});
    }
    old_bias = std::move(values->values);
    if (!int32_bias) m.bias_kind = bias->inputKind();
  }
  auto values_or_why = readBatchNormValues(eval, channels, eval.eps);
  if (auto* why = std::get_if<Refusal>(&values_or_why)) return refused(why->code, why->details);
  const BatchNormValues& values = std::get<BatchNormValues>(values_or_why);
  const auto bias_span = old_bias ? std::optional<std::span<const float>>(*old_bias) : std::nullopt;
  const std::vector<std::int8_t> weight_values = weight_view.values<std::int8_t>();

  // The weights: per channel, the integers kept and the scales multiplied;
  // per tensor (on request), re-quantized.
  std::optional<numerics::ScaleFoldProblem> problem;
  std::vector<float> factor;
  std::size_t negated = 0;
  std::optional<FoldedConv::WeightError> weight_error;
  if (per_tensor) {
    const numerics::PerTensorWeight weight{
        weight_values,       sizes, axis, weight_dq->scale, weight_dq->zero_point, weight_dq->quant_min,
        weight_dq->quant_max};
    auto result = numerics::requantizeWithBatchNorm(weight, bias_span, values.parameters());
    if (auto* p = std::get_if<numerics::ScaleFoldProblem>(&result)) {
      problem = *p;
    } else {
      auto& r = std::get<numerics::RequantizedWeights>(result);
      factor = std::move(r.factor);
      m.new_weight = std::move(r.values);
      m.new_scales = std::vector<float>(static_cast<std::size_t>(channels), static_cast<float>(r.scale));
      m.new_tensor_scale = r.scale;
      m.new_bias = std::move(r.bias);
      weight_error = {r.relative_error, r.worst_channel_error, r.worst_channel};
    }
  } else {
    const TensorView scales_view = weight_dq->scales->payload()->view();
    const TensorView zero_points_view = weight_dq->zero_points->payload()->view();
    if (scales_view.meta().dtype != ScalarType::kFloat32 || !isIntegerType(zero_points_view.meta().dtype) ||
        scales_view.meta().numel() != channels || zero_points_view.meta().numel() != channels) {
      return weight_refusal();
    }
    const std::vector<float> scales = scales_view.values<float>();
    std::vector<std::int64_t> zero_points;
    for (double z : zero_points_view.asDoubles()) zero_points.push_back(static_cast<std::int64_t>(z));
    const numerics::PerChannelWeight weight{weight_values,       sizes, axis, scales, zero_points, weight_dq->quant_min,
                                            weight_dq->quant_max};
    auto result = numerics::foldBatchNormIntoScales(weight, bias_span, values.parameters());
    if (auto* p = std::get_if<numerics::ScaleFoldProblem>(&result)) {
      problem = *p;
    } else {
      auto& f = std::get<numerics::FoldedScales>(result);
      factor = std::move(f.factor);
      negated = f.negated.size();
      m.new_weight = std::move(f.values);
      m.new_scales = std::move(f.scales);
      m.new_bias = std::move(f.bias);
    }
  }
  if (problem) {
    using Kind = numerics::ScaleFoldProblem::Kind;
    const std::string channel = std::to_string(problem->channel);
    switch (problem->kind) {
      case Kind::kZeroFactor: return refused(RefusalCode::kZeroFactor, {channel});
      case Kind::kScaleNotNormal: return refused(RefusalCode::kScaleNotNormal, {channel, number(problem->value)});
      case Kind::kCannotNegate: return refused(RefusalCode::kCannotNegate, {channel, number(problem->value)});
      case Kind::kNonFiniteBias: return refused(RefusalCode::kNonFiniteBias);
    }
  }

  // The folded output's quantization, from the best evidence there is.
  bool after_relu = false;
  const auto trained = quant::readAffine(trainedQuantize(bn, after_relu));
  if (direct && !trained) return refused(RefusalCode::kOutputRangeUnknown, {layer->name(), whyNoQatChain(*layer)});
  const numerics::AffineRange before = direct ? rangeOf(*trained) : rangeOf(*output.quantize);
  FoldedConv::Requantized requantized{"", before, before, negated, weight_error, output.looked_through};
  const ObservedRange* observed = nullptr;
  if (config_.observed != nullptr) {
    if (auto found = config_.observed->find(bn.name()); found != config_.observed->end()) observed = &found->second;
  }
  if (trained) {
    requantized.source = after_relu ? "trained after relu" : "trained";
    requantized.after = rangeOf(*trained);
    m.to_trained_quantize = true;
  } else if (observed != nullptr) {
    requantized.source = "calibrated";
    requantized.after = numerics::observedRange(observed->min, observed->max, before);
  } else if (config_.mode == QuantizedBatchNorm::kEstimate) {
    std::vector<float> shift(factor.size());
    for (std::size_t c = 0; c < shift.size(); ++c) shift[c] = values.bias[c] - factor[c] * values.mean[c];
    requantized.source = "estimated";
    requantized.after = numerics::estimateFoldedRange(before, factor, shift);
  } else {
    return refused(RefusalCode::kOutputRangeUnknown, {layer->name(), whyNoQatChain(*layer)});
  }
  // XNNPACK's check, in its float arithmetic.
  const auto input_scale = static_cast<float>(input_dq->scale);
  const auto output_scale = static_cast<float>(requantized.after.scale);
  for (std::size_t c = 0; c < m.new_scales.size(); ++c) {
    const float requantization = input_scale * m.new_scales[c] / output_scale;
    if (!(requantization < quant::kXnnpack.max_requantization_scale)) {
      return refused(RefusalCode::kRequantizationScale, {std::to_string(c), number(requantization)});
    }
  }

  if (int32_bias) {
    // s_b = s_in * s'_c, as QuantizeConvBias makes it, and the bias on it.
    QuantizeConvBias::Match& bias = m.int32_bias.emplace();
    bias.conv = layer;
    bias.channels = channels;
    bias.per_channel = !m.new_tensor_scale;
    std::size_t clamped = 0;
    if (bias.per_channel) {
      bias.scales = numerics::biasScales(input_dq->scale, m.new_scales);
      const std::vector<std::int64_t> zeros(bias.scales.size(), 0);
      auto quantized = numerics::quantizeBiasPerChannel(m.new_bias, bias.scales, zeros, QuantizeConvBias::kQuantMin,
                                                        QuantizeConvBias::kQuantMax);
      bias.values = std::move(quantized.values);
      clamped = quantized.clamped;
    } else {
      bias.scale = numerics::biasScale(input_dq->scale, *m.new_tensor_scale);
      auto quantized = numerics::quantizeBiasPerTensor(m.new_bias, bias.scale, 0, QuantizeConvBias::kQuantMin,
                                                       QuantizeConvBias::kQuantMax);
      bias.values = std::move(quantized.values);
      clamped = quantized.clamped;
    }
    for (float s : bias.scales) {
      if (!(s > 0.0f) || !std::isfinite(s)) return refused(RefusalCode::kBiasScaleNotPositive);
    }
    m.report.clamped_bias_elements = clamped;
  }

  m.layer = layer;
  m.batch_norm = &bn;
  m.output_quantize = direct ? nullptr : output.quantize->node;
  m.output_dequantize = direct ? nullptr : output.dequantize->node;
  m.weight_dequantize = weight_dq->node;
  m.weight = weight_dq->input;
  m.scales = weight_dq->scales;
  describeFold(m.report, *layer, bn, channels);
  m.report.float_bias = !int32_bias;
  m.report.per_channel_bias = m.int32_bias && m.int32_bias->per_channel;
  m.report.scaled_weights = true;
  m.report.output_quantized = false;  // its range is chosen to cover BN(y): no shift to estimate
  m.report.requantized = std::move(requantized);
  return m;
}

void FoldBatchNormIntoWeightScales::rewrite(graph::Graph& graph, const Match& m) const {
  const std::string path = modulePath(*m.layer);
  const std::string prefix = path.empty() ? m.layer->name() : path;
  const auto channels = static_cast<std::int64_t>(m.new_bias.size());
  const auto vector_meta = program::TensorMeta::contiguous(ScalarType::kFloat32, {channels});
  // New tensors, not edits in place: the old ones may be read elsewhere.
  if (!m.new_weight.empty()) {
    graph::Value* weight = graph.addConstantTensor(
        m.weight->inputKind(), prefix + ".folded_weight", "b_" + m.layer->name() + "_folded_weight",
        program::TensorMeta::contiguous(ScalarType::kInt8, m.weight->payload()->view().meta().sizes),
        std::make_shared<Storage>(encodeValues(m.new_weight)));
    graph.setInput(m.weight_dequantize, "input", weight);
  }
  if (m.new_tensor_scale) {
    graph.setArgument(m.weight_dequantize, "scale", program::Argument::real(*m.new_tensor_scale));
    graph.setArgument(m.weight_dequantize, "zero_point", program::Argument::integer(0));
  } else {
    graph::Value* scales = graph.addConstantTensor(m.scales->inputKind(), prefix + ".folded_weight_scales",
                                                   "b_" + m.layer->name() + "_folded_weight_scales", vector_meta,
                                                   std::make_shared<Storage>(encodeValues(m.new_scales)));
    graph.setInput(m.weight_dequantize, "scales", scales);
  }
  if (m.int32_bias) {
    QuantizeConvBias().rewrite(graph, *m.int32_bias);  // a new int32 tensor and dequantize; the old go with DCE
  } else {
    graph::Value* bias =
        graph.addConstantTensor(m.bias_kind, prefix + ".folded_bias", "p_" + m.layer->name() + "_folded_bias",
                                vector_meta, std::make_shared<Storage>(encodeValues(m.new_bias)));
    graph.setInput(m.layer, "bias", bias, "weight");
  }
  if (m.to_trained_quantize) {
    // layer -> [relu] -> q: the old pair goes with dead-code elimination.
    graph.replaceAllUsesWith(m.batch_norm->output(0), m.layer->output());
  } else {
    const numerics::AffineRange& after = m.report.requantized->after;
    for (graph::Node* node : {m.output_quantize, m.output_dequantize}) {
      graph.setArgument(node, "scale", program::Argument::real(after.scale));
      graph.setArgument(node, "zero_point", program::Argument::integer(after.zero_point));
    }
    graph.replaceAllUsesWith(m.batch_norm->output(0), m.output_dequantize->output());
  }
  graph.eraseNode(m.batch_norm);
}

}  // namespace qatfold::passes
