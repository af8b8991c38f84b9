#include "qatfold/passes/fold_conv_batch_norm_chain.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "qatfold/numerics/bias_fold.h"
#include "qatfold/numerics/dequantize.h"
#include "qatfold/numerics/output_range.h"
#include "qatfold/numerics/scale_fold.h"
#include "qatfold/program/payload.h"

namespace qatfold::passes {
namespace {

using program::ScalarType;

std::string percent(double value) {
  char text[64];
  std::snprintf(text, sizeof text, "%.3g", value);
  return text;
}

}  // namespace

FoldConvBatchNormChain::MatchResult FoldConvBatchNormChain::match(graph::Node& bn) const {
  // ---- structure: the tail, then the conv (through q/dq, or directly) --------------
  auto tail_or_why = matchBatchNormTail(bn);
  if (auto* why = std::get_if<Refusal>(&tail_or_why)) return std::move(*why);
  const BatchNormTail& tail = std::get<BatchNormTail>(tail_or_why);

  // The chain's result becomes the conv output's dequantize, or the conv
  // output itself when no quantize/dequantize sits between conv and chain
  // (an unquantized conv, or a quantizer that annotated conv + BN as one unit).
  graph::Value* conv_output = tail.divided;
  std::optional<quant::AffineQuantization> output_q;
  std::vector<std::pair<graph::Value*, graph::Node*>> exclusive = {{tail.divided, tail.div}};
  if (tail.divided->producer() == nullptr || !isChannelProducer(*tail.divided->producer())) {
    auto output_dq = quant::readAffine(tail.divided->producer());
    if (!output_dq || output_dq->op != quant::Op::kDequantizePerTensor) {
      return chainFailure(RefusalCode::kNoOutputDequantize);
    }
    output_q = quant::readAffine(output_dq->input->producer());
    if (!output_q || output_q->op != quant::Op::kQuantizePerTensor) {
      return chainFailure(RefusalCode::kNoOutputQuantize);
    }
    if (!quant::sameParameters(*output_q, *output_dq)) {
      return chainFailure(RefusalCode::kOutputQuantizationMismatch);
    }
    conv_output = output_q->input;
    exclusive.insert(exclusive.end(), {{conv_output, output_q->node}, {output_q->node->output(), output_dq->node}});
  }
  graph::Node* conv = conv_output->producer();
  if (conv == nullptr || !isChannelProducer(*conv)) return chainFailure(RefusalCode::kNotConvOutput);
  for (const auto& [value, reader] : exclusive) {
    if (auto use = outsideUse(*value, {reader})) return chainFailure(RefusalCode::kUsedOutsideChain, {*use});
  }

  Match m;
  m.conv = conv;
  m.result = tail.result();
  m.replacement = tail.divided;
  m.chain = tail.nodes();

  // ---- the bias: int32 (existing or prepared), or float ----------------------------
  graph::Value* bias = conv->tryGetInput("bias");
  auto bias_dq = quant::readAffine(bias ? bias->producer() : nullptr);
  const bool int32_bias = bias_dq && quant::isDequantize(bias_dq->op) && bias_dq->dtype == ScalarType::kInt32;
  std::optional<Refusal> why;
  if (int32_bias || output_q || QuantizeConvBias::hasQuantizedInputs(*conv)) {
    why = matchInt32Bias(m, tail, *conv, output_q);
  } else if (bias_dq) {
    why = chainFailure(RefusalCode::kQuantizedBiasUnquantizedOutput, {conv->name()});
  } else {
    why = matchFloatBias(m, tail, *conv);
  }
  if (why) return std::move(*why);
  m.report.prepared_bias = m.prepared ? QuantizeConvBias::describe(*m.prepared) : "";
  return m;
}

std::optional<Refusal> FoldConvBatchNormChain::matchInt32Bias(
    Match& m, const BatchNormTail& tail, graph::Node& conv,
    const std::optional<quant::AffineQuantization>& output_q) const {
  // The conv's int32 bias, or, when it has none, the one bias preparation
  // would give it (written prepared and shifted at once).
  graph::Value* conv_bias = conv.tryGetInput("bias");
  auto bias = quant::readAffine(conv_bias ? conv_bias->producer() : nullptr);
  if (!bias || !quant::isDequantize(bias->op) || bias->dtype != ScalarType::kInt32) {
    auto prepared_or_why = QuantizeConvBias().match(conv);
    if (const auto* why = std::get_if<std::string>(&prepared_or_why)) {
      return chainFailure(RefusalCode::kBiasNotPreparable, {conv.name(), *why});
    }
    m.prepared = std::move(std::get<QuantizeConvBias::Match>(prepared_or_why));
    m.bias_update = BiasUpdate::kInt32Prepared;
  } else if (!isConstantTensor(bias->input) || bias->input->payload()->meta.tensor_meta->dtype != ScalarType::kInt32) {
    return chainFailure(RefusalCode::kBiasNotInt32Constant, {conv.name()});
  } else {
    m.int32_bias = bias->input;
    m.bias_dequantize = bias->node;
    const bool shared = bias->input->useCount() > 1 || conv_bias->useCount() > 1;
    m.bias_update = shared ? BiasUpdate::kInt32Copy : BiasUpdate::kInt32InPlace;
  }

  // ---- data: constant parameters, channels, numerics ---------------------------
  const std::int64_t channels = m.prepared ? m.prepared->channels : bias->input->payload()->meta.tensor_meta->numel();
  const program::TensorMeta* out_meta = conv.output()->meta();
  if (out_meta == nullptr || out_meta->rank() == 0) return chainFailure(RefusalCode::kOutputShapeUnknown);
  auto numbers_or_why = batchNormNumbers(tail, channels, out_meta->rank());
  if (auto* why = std::get_if<Refusal>(&numbers_or_why)) return std::move(*why);
  const TailNumbers& numbers = std::get<TailNumbers>(numbers_or_why);

  const bool per_channel_bias = m.prepared ? m.prepared->per_channel : bias->per_channel;
  std::vector<float> scales;
  std::vector<std::int64_t> zero_points;
  const std::int64_t quant_min = m.prepared ? QuantizeConvBias::kQuantMin : bias->quant_min;
  const std::int64_t quant_max = m.prepared ? QuantizeConvBias::kQuantMax : bias->quant_max;
  if (m.prepared) {
    scales = m.prepared->per_channel ? m.prepared->scales : std::vector<float>{static_cast<float>(m.prepared->scale)};
    zero_points.assign(scales.size(), 0);
  } else if (!bias->per_channel) {
    scales = {static_cast<float>(bias->scale)};
    zero_points = {bias->zero_point};
  } else {
    if (!isConstantTensor(bias->scales) || !isConstantTensor(bias->zero_points) || bias->axis != 0) {
      return chainFailure(RefusalCode::kBiasScalesNotConstant);
    }
    const TensorView scale_view = bias->scales->payload()->view();
    if (scale_view.meta().dtype != ScalarType::kFloat32 || scale_view.meta().numel() != channels) {
      return chainFailure(RefusalCode::kBiasScalesShape);
    }
    scales = scale_view.values<float>();
    const TensorView zp_view = bias->zero_points->payload()->view();
    if (zp_view.meta().numel() != channels) return chainFailure(RefusalCode::kBiasZeroPointsShape);
    for (double zp : zp_view.asDoubles()) zero_points.push_back(static_cast<std::int64_t>(zp));
  }
  for (float s : scales) {
    if (!(s > 0.0f) || !std::isfinite(s)) return chainFailure(RefusalCode::kBiasScaleNotPositive);
  }

  // ---- eps mismatch: out = y * r + C ------------------------------------------
  if (numbers.factor) {
    const std::vector<float>& r = *numbers.factor;
    FoldedConv::EpsMismatch mismatch;
    mismatch.chain_eps = tail.chain_eps;
    mismatch.batch_norm_eps = tail.eps;
    mismatch.factor_min = *std::min_element(r.begin(), r.end());
    mismatch.factor_max = *std::max_element(r.begin(), r.end());
    mismatch.dequantized_parameters = numbers.factor_from_parameters;
    graph::Value* weight = conv.tryGetInput("weight");
    auto weight_dq = quant::readAffine(weight ? weight->producer() : nullptr);
    // Output channels are the weight's axis 0, or axis 1 for a transposed
    // conv with one group.
    const bool transposed = conv.target().find("transpose") != std::string::npos;
    const program::Argument* groups = conv.tryGetArgument("groups");
    const bool one_group = groups == nullptr || groups->asInt().value_or(1) == 1;
    const std::int64_t channel_axis = transposed ? 1 : 0;
    if (weight_dq && weight_dq->per_channel && per_channel_bias && weight_dq->axis == channel_axis &&
        (!transposed || one_group) && weight->useCount() == 1 && isConstantTensor(weight_dq->scales) &&
        weight_dq->scales->payload()->view().meta().dtype == ScalarType::kFloat32 &&
        weight_dq->scales->payload()->view().meta().numel() == channels) {
      // Exact: the weight's channel c and its bias both scale by r_c.
      m.weight_scales =
          ConstantUpdate{weight_dq->node, "scales", weight_dq->scales,
                         numerics::scaleByFactor(weight_dq->scales->payload()->view().values<float>(), r)};
      scales = numerics::scaleByFactor(scales, r);
      if (m.prepared) m.prepared->scales = scales;  // a prepared bias is made with its final scales
      else m.bias_scales = ConstantUpdate{bias->node, "scales", bias->scales, scales};
      mismatch.in_weight_scales = true;
    } else {
      const double deviation = std::max(std::fabs(mismatch.factor_max - 1.0), std::fabs(1.0 - mismatch.factor_min));
      if (deviation > options_.eps_tolerance && options_.requantize_per_tensor) {
        if (auto why = requantizeWeight(m, conv, r, numbers.shift, per_channel_bias, channel_axis, channels)) {
          return std::move(*why);
        }
        mismatch.requantized_weights = m.requantized_weight->error;
      } else if (deviation > options_.eps_tolerance && numbers.factor_from_parameters) {
        return chainFailure(RefusalCode::kParameterFactorPerTensor,
                            {percent(100.0 * deviation), percent(options_.eps_tolerance)});
      } else if (deviation > options_.eps_tolerance) {
        return chainFailure(RefusalCode::kEpsMismatchPerTensor,
                            {formatFloatLikePython(tail.chain_eps), formatFloatLikePython(tail.eps),
                             percent(100.0 * deviation), percent(options_.eps_tolerance)});
      }
    }
    m.report.eps_mismatch = mismatch;
  }
  if (!m.requantized_weight) {  // (re-quantized weights come with their bias)
    const std::vector<std::int32_t> old_bias =
        m.prepared ? m.prepared->values : bias->input->payload()->view().values<std::int32_t>();
    numerics::QuantizedBias folded = numerics::addShiftToQuantizedBias(
        old_bias, numbers.shift, numerics::BiasQuantization{scales, zero_points, quant_min, quant_max});
    if (m.prepared) m.prepared->values = std::move(folded.values);
    else m.new_int32_bias = std::move(folded.values);
    m.report.clamped_bias_elements = folded.clamped;
  }

  describeFold(m.report, conv, *tail.batch_norm, channels);
  m.report.per_channel_bias = per_channel_bias;
  m.report.copied_bias = m.bias_update == BiasUpdate::kInt32Copy;
  if (output_q) {
    const numerics::AffineRange calibrated{output_q->scale, output_q->zero_point, output_q->quant_min,
                                           output_q->quant_max};
    m.report.risk = numerics::outputRangeRisk(numbers.shift, calibrated);
    m.report.flagged = m.report.risk.relative_shift > options_.risk_threshold;
    if (options_.output_range == OutputRange::kWiden) {
      // The new range holds y + C for every y the calibrated one held.
      m.output_quantize = output_q->node;
      m.output_dequantize = tail.divided->producer();
      m.report.widened_output = numerics::widenToCoverShift(numbers.shift, calibrated);
      m.report.flagged = false;
    }
  } else {
    // No output quantization right after the conv: no range to clip against.
    m.report.output_quantized = false;
    for (float value : numbers.shift) {
      m.report.risk.max_abs_shift = std::max(m.report.risk.max_abs_shift, std::fabs(value));
    }
  }
  return std::nullopt;
}

std::optional<Refusal> FoldConvBatchNormChain::requantizeWeight(Match& m, graph::Node& conv,
                                                                std::span<const float> factor,
                                                                std::span<const float> shift, bool per_channel_bias,
                                                                std::int64_t channel_axis,
                                                                std::int64_t channels) const {
  // Per-tensor int8 weights, read by this conv alone, and a per-tensor bias.
  graph::Value* weight = conv.tryGetInput("weight");
  auto weight_dq = quant::readAffine(weight ? weight->producer() : nullptr);
  graph::Value* input = conv.tryGetInput("input");
  auto input_dq = quant::readAffine(input ? input->producer() : nullptr);
  if (!weight_dq || weight_dq->per_channel || weight->useCount() != 1 || !isConstantTensor(weight_dq->input) ||
      weight_dq->input->payload()->view().meta().dtype != ScalarType::kInt8 || per_channel_bias || !input_dq ||
      input_dq->op != quant::Op::kDequantizePerTensor) {
    return chainFailure(RefusalCode::kWeightNotRequantizable, {conv.name()});
  }
  const TensorView view = weight_dq->input->payload()->view();
  const std::vector<std::int8_t> values = view.values<std::int8_t>();
  const std::vector<std::int64_t>& sizes = view.meta().sizes;
  if (static_cast<std::int64_t>(sizes.size()) <= channel_axis ||
      sizes[static_cast<std::size_t>(channel_axis)] != channels) {
    return chainFailure(RefusalCode::kWeightNotRequantizable, {conv.name()});
  }
  const numerics::PerTensorWeight per_tensor{
      values, sizes, channel_axis, weight_dq->scale, weight_dq->zero_point, weight_dq->quant_min, weight_dq->quant_max};
  auto result = numerics::requantizeWithFactor(per_tensor, factor);
  if (const auto* problem = std::get_if<numerics::ScaleFoldProblem>(&result)) {
    char value[32];
    std::snprintf(value, sizeof value, "%.7g", problem->value);
    return chainFailure(RefusalCode::kScaleNotNormal, {std::to_string(problem->channel), value});
  }
  auto& requantized = std::get<numerics::RequantizedWeights>(result);

  // The bias: b_c * r_c + C_c (b dequantized), on s_in * s' per tensor.
  std::vector<float> old_bias(static_cast<std::size_t>(channels), 0.0f);
  std::int64_t zero_point = 0, quant_min = QuantizeConvBias::kQuantMin, quant_max = QuantizeConvBias::kQuantMax;
  if (!m.prepared) {
    auto bias = quant::readAffine(m.bias_dequantize);
    std::vector<double> integers;
    for (std::int32_t b : m.int32_bias->payload()->view().values<std::int32_t>()) integers.push_back(b);
    old_bias = numerics::dequantizePerTensor(integers, bias->scale, bias->zero_point);
    zero_point = bias->zero_point;
    quant_min = bias->quant_min;
    quant_max = bias->quant_max;
  }
  std::vector<float> new_bias(old_bias.size());
  for (std::size_t c = 0; c < new_bias.size(); ++c) new_bias[c] = old_bias[c] * factor[c] + shift[c];
  const double bias_scale = numerics::biasScale(input_dq->scale, requantized.scale);
  numerics::QuantizedBias quantized =
      numerics::quantizeBiasPerTensor(new_bias, bias_scale, zero_point, quant_min, quant_max);
  m.report.clamped_bias_elements = quantized.clamped;
  if (m.prepared) {
    m.prepared->values = std::move(quantized.values);
    m.prepared->scale = bias_scale;
  } else {
    m.new_int32_bias = std::move(quantized.values);
  }
  m.requantized_weight =
      RequantizedWeight{weight_dq->node,
                        weight_dq->input,
                        std::move(requantized.values),
                        requantized.scale,
                        bias_scale,
                        {requantized.relative_error, requantized.worst_channel_error, requantized.worst_channel}};
  return std::nullopt;
}

std::optional<Refusal> FoldConvBatchNormChain::matchFloatBias(Match& m, const BatchNormTail& tail,
                                                              graph::Node& conv) const {
  graph::Value* bias = conv.tryGetInput("bias");
  graph::Node* bias_producer = bias ? bias->producer() : nullptr;
  const bool zero_bias = bias == nullptr || (bias_producer != nullptr && bias_producer->target() == op::kZerosLike);
  if (!zero_bias && !isConstantTensor(bias)) return chainFailure(RefusalCode::kFloatBiasNotConstant, {conv.name()});

  const program::TensorMeta* out_meta = conv.output()->meta();
  if (out_meta == nullptr || out_meta->rank() < 2) return chainFailure(RefusalCode::kOutputShapeUnknown);
  const std::optional<std::int64_t> known_channels = out_meta->size(1);
  if (!known_channels) return chainFailure(RefusalCode::kChannelsSymbolic, {conv.name()});
  const std::int64_t channels = *known_channels;
  auto numbers_or_why = batchNormNumbers(tail, channels, out_meta->rank());
  if (auto* why = std::get_if<Refusal>(&numbers_or_why)) return std::move(*why);
  const TailNumbers& numbers = std::get<TailNumbers>(numbers_or_why);
  if (numbers.factor) {
    return chainFailure(RefusalCode::kEpsMismatchFloat,
                        {formatFloatLikePython(tail.chain_eps), formatFloatLikePython(tail.eps)});
  }
  std::optional<std::vector<float>> old_bias;
  if (!zero_bias) {
    const TensorView view = bias->payload()->view();
    if (view.meta().dtype != ScalarType::kFloat32 || view.meta().numel() != channels) {
      return chainFailure(RefusalCode::kFloatBiasShape, {conv.name()});
    }
    old_bias = view.values<float>();
    m.float_bias_kind = bias->inputKind();
  }
  m.bias_update = BiasUpdate::kFloat;
  m.new_float_bias = numerics::addShiftToFloatBias(
      old_bias ? std::optional<std::span<const float>>(*old_bias) : std::nullopt, numbers.shift);
  describeFold(m.report, conv, *tail.batch_norm, channels);
  m.report.float_bias = true;
  m.report.output_quantized = false;
  for (float value : numbers.shift)
    m.report.risk.max_abs_shift = std::max(m.report.risk.max_abs_shift, std::fabs(value));
  return std::nullopt;
}

namespace {

// Points `update.reader`'s operand at the new values: the old constant
// changes in place when the reader alone reads it, else the reader gets a
// new one.
void setFloatConstant(graph::Graph& graph, graph::Node* reader, const std::string& operand, graph::Value* constant,
                      const std::vector<float>& values) {
  auto meta = program::TensorMeta::contiguous(ScalarType::kFloat32, {static_cast<std::int64_t>(values.size())});
  auto storage = std::make_shared<Storage>(encodeValues(values));
  if (constant->useCount() == 1) {
    graph.replaceTensorData(constant, meta, storage);
  } else {
    const std::string hint = reader->name() + "_" + operand;
    graph.setInput(reader, operand, graph.addConstantTensor(constant->inputKind(), hint, "b_" + hint, meta, storage));
  }
}

}  // namespace

void FoldConvBatchNormChain::rewrite(graph::Graph& graph, const Match& m) const {
  const auto int32_meta =
      program::TensorMeta::contiguous(ScalarType::kInt32, {static_cast<std::int64_t>(m.new_int32_bias.size())});
  // The dequantize whose scales change with an eps mismatch.
  graph::Node* bias_dequantize = m.bias_dequantize;
  switch (m.bias_update) {
    case BiasUpdate::kInt32Prepared: QuantizeConvBias().rewrite(graph, *m.prepared); break;
    case BiasUpdate::kInt32InPlace:
      graph.replaceTensorData(m.int32_bias, int32_meta, std::make_shared<Storage>(encodeValues(m.new_int32_bias)));
      break;
    case BiasUpdate::kInt32Copy: {
      // Others read the old bias: this conv gets its own tensor and dequantize.
      graph::Value* own = graph.addConstantTensor(m.int32_bias->inputKind(), m.conv->name() + "_folded_bias",
                                                  "b_" + m.conv->name() + "_folded_bias", int32_meta,
                                                  std::make_shared<Storage>(encodeValues(m.new_int32_bias)));
      graph::NodeSpec dequantize;
      dequantize.target = m.bias_dequantize->target();
      dequantize.name_hint = m.conv->name() + "_bias_dequantize";
      dequantize.output_meta = *m.bias_dequantize->output()->meta();
      dequantize.metadata = m.bias_dequantize->metadata();
      dequantize.metadata_source = m.bias_dequantize;
      for (const graph::Operand& operand : m.bias_dequantize->operands()) {
        if (operand.name == "input") {
          dequantize.inputs.push_back({operand.name, own});
        } else if (operand.values.size() == 1 && operand.values[0] != nullptr) {
          dequantize.inputs.push_back({operand.name, operand.values[0]});
        } else {
          dequantize.inputs.push_back({operand.name, operand.argument()});
        }
      }
      bias_dequantize = graph.insertNodeBefore(m.conv, dequantize);
      graph.setInput(m.conv, "bias", bias_dequantize->output());
      break;
    }
    case BiasUpdate::kFloat: {
      // Named after the conv's module when known: "layer1.conv.folded_bias".
      const std::string path = modulePath(*m.conv);
      const std::string fqn = (path.empty() ? m.conv->name() : path) + ".folded_bias";
      graph::Value* bias = graph.addConstantTensor(
          m.float_bias_kind, fqn, "p_" + m.conv->name() + "_folded_bias",
          program::TensorMeta::contiguous(ScalarType::kFloat32, {static_cast<std::int64_t>(m.new_float_bias.size())}),
          std::make_shared<Storage>(encodeValues(m.new_float_bias)));
      graph.setInput(m.conv, "bias", bias, "weight");
      break;
    }
  }
  if (m.requantized_weight) {
    const RequantizedWeight& w = *m.requantized_weight;
    graph::Value* values = graph.addConstantTensor(
        w.weight->inputKind(), m.conv->name() + "_requantized_weight", "b_" + m.conv->name() + "_requantized_weight",
        program::TensorMeta::contiguous(ScalarType::kInt8, w.weight->payload()->view().meta().sizes),
        std::make_shared<Storage>(encodeValues(w.values)));
    graph.setInput(w.dequantize, "input", values);
    graph.setArgument(w.dequantize, "scale", program::Argument::real(w.scale));
    graph.setArgument(w.dequantize, "zero_point", program::Argument::integer(0));
    if (m.bias_update != BiasUpdate::kInt32Prepared) {
      graph.setArgument(bias_dequantize, "scale", program::Argument::real(w.bias_scale));
    }
  }
  if (m.weight_scales) {
    const ConstantUpdate& w = *m.weight_scales;
    setFloatConstant(graph, w.reader, w.operand, w.constant, w.values);
  }
  if (m.bias_scales) {
    // A copied dequantize reads the same scales as the original, so it gets its own.
    const ConstantUpdate& b = *m.bias_scales;
    setFloatConstant(graph, bias_dequantize, b.operand, b.constant, b.values);
  }
  if (m.report.widened_output) {
    for (graph::Node* node : {m.output_quantize, m.output_dequantize}) {
      graph.setArgument(node, "scale", program::Argument::real(m.report.widened_output->scale));
      graph.setArgument(node, "zero_point", program::Argument::integer(m.report.widened_output->zero_point));
    }
  }
  graph.replaceAllUsesWith(m.result, m.replacement);
  for (graph::Node* node : m.chain) graph.eraseNode(node);
}

}  // namespace qatfold::passes
