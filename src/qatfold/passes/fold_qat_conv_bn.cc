#include "qatfold/passes/fold_qat_conv_bn.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "qatfold/numerics/bias_fold.h"
#include "qatfold/passes/batch_norm_tail.h"
#include "qatfold/passes/quantize_conv_bias.h"
#include "qatfold/program/payload.h"

namespace qatfold::passes {
namespace {

using program::ScalarType;

}  // namespace

FoldQatConvBatchNorm::MatchResult FoldQatConvBatchNorm::match(graph::Node& bn) const {
  // ---- structure: the tail, then q/dq and the conv before it -------------------
  auto tail_or_why = matchBatchNormTail(bn);
  if (const auto* why = std::get_if<TailMismatch>(&tail_or_why)) return *why;
  const BatchNormTail& tail = std::get<BatchNormTail>(tail_or_why);

  // What replaces the chain's result: the conv output's dequantize, or the
  // conv output itself when a quantizer annotated conv + BN as one unit and
  // put no quantize/dequantize between them.
  graph::Value* conv_output_dq = tail.divided;
  graph::Value* conv_output = nullptr;
  std::optional<AffineQuantization> output_q;
  std::optional<AffineQuantization> output_dq;
  if (tail.divided->producer() != nullptr && isChannelProducer(*tail.divided->producer())) {
    conv_output = tail.divided;
  } else {
    output_dq = readAffineQuantization(conv_output_dq->producer());
    if (!output_dq || output_dq->node->target() != op::kDequantizePerTensor) {
      return chainFailure("the divided value is not dequantized per tensor (no quantize/dequantize after the conv)");
    }
    output_q = readAffineQuantization(output_dq->input->producer());
    if (!output_q || output_q->node->target() != op::kQuantizePerTensor) {
      return chainFailure("the dequantize after the conv is not fed by quantize_per_tensor");
    }
    if (output_q->scale != output_dq->scale || output_q->zero_point != output_dq->zero_point ||
        output_q->quant_min != output_dq->quant_min || output_q->quant_max != output_dq->quant_max) {
      return chainFailure("the quantize/dequantize pair after the conv disagree on their parameters");
    }
    conv_output = output_q->input;
  }
  graph::Node* conv = conv_output->producer();
  if (conv == nullptr || !isChannelProducer(*conv)) {
    return chainFailure("the quantized value is not a convolution or linear output");
  }
  // The conv's int32 bias, or, when it has none, the one bias preparation
  // would give it (the fold then writes the prepared and shifted bias at once).
  graph::Value* conv_bias = conv->tryGetInput("bias");
  auto bias = readAffineQuantization(conv_bias ? conv_bias->producer() : nullptr);
  std::optional<QuantizeConvBias::Match> prepared;
  if (!bias || bias->node->target() == op::kQuantizePerTensor || bias->dtype != ScalarType::kInt32) {
    auto prepared_or_why = QuantizeConvBias().match(*conv);
    if (const auto* why = std::get_if<std::string>(&prepared_or_why)) {
      std::string reason = "'" + conv->name() + "' has no int32 dequantized bias and cannot be given one: " + *why;
      // An unquantized conv's chain is FoldFloatConvBatchNorm's to fold.
      if (!QuantizeConvBias::hasQuantizedInputs(*conv)) return otherKindOfChain(std::move(reason));
      return chainFailure(std::move(reason));
    }
    prepared = std::move(std::get<QuantizeConvBias::Match>(prepared_or_why));
  } else if (!isConstantTensor(bias->input) || bias->input->payload()->meta.tensor_meta->dtype != ScalarType::kInt32) {
    return chainFailure("the bias of conv '" + conv->name() + "' is not a constant int32 tensor");
  }
  std::vector<std::pair<graph::Value*, graph::Node*>> exclusive = {{conv_output_dq, tail.div}};
  if (output_q) {
    exclusive.insert(exclusive.end(), {{conv_output, output_q->node}, {output_q->node->output(), output_dq->node}});
  }
  for (const auto& [value, reader] : exclusive) {
    if (auto use = outsideUse(*value, {reader})) return chainFailure(*use + " outside the chain");
  }

  // ---- data: constant parameters, channels, numerics ---------------------------
  const std::int64_t channels =
      prepared ? prepared->channels : bias->input->payload()->meta.tensor_meta->numel();
  const program::TensorMeta* out_meta = conv_output->meta();
  if (out_meta == nullptr || out_meta->symbolic) return chainFailure("conv output shape is unknown");
  auto numbers_or_why = batchNormNumbers(tail, channels, out_meta->sizes.size());
  if (const auto* why = std::get_if<std::string>(&numbers_or_why)) return chainFailure(*why);
  const TailNumbers& numbers = std::get<TailNumbers>(numbers_or_why);
  const std::vector<float>& shift = numbers.shift;

  const bool per_channel_bias = prepared ? prepared->per_channel : bias->per_channel;
  std::vector<float> scales;
  std::vector<std::int64_t> zero_points;
  const std::int64_t quant_min = prepared ? QuantizeConvBias::kQuantMin : bias->quant_min;
  const std::int64_t quant_max = prepared ? QuantizeConvBias::kQuantMax : bias->quant_max;
  if (prepared) {
    scales = prepared->per_channel ? prepared->scales : std::vector<float>{static_cast<float>(prepared->scale)};
    zero_points.assign(scales.size(), 0);
  } else if (!bias->per_channel) {
    scales = {static_cast<float>(bias->scale)};
    zero_points = {bias->zero_point};
  } else {
    if (!isConstantTensor(bias->scales) || !isConstantTensor(bias->zero_points) || bias->axis != 0) {
      return chainFailure("the per-channel bias scales or zero points are not constant");
    }
    const TensorView scale_view = bias->scales->payload()->view();
    if (scale_view.meta().dtype != ScalarType::kFloat32 || scale_view.meta().numel() != channels) {
      return chainFailure("the per-channel bias scales are not float32 with one per channel");
    }
    scales = scale_view.values<float>();
    const TensorView zp_view = bias->zero_points->payload()->view();
    if (zp_view.meta().numel() != channels) return chainFailure("the per-channel bias zero points do not match");
    for (double zp : zp_view.asDoubles()) zero_points.push_back(static_cast<std::int64_t>(zp));
  }
  for (float s : scales) {
    if (!(s > 0.0f) || !std::isfinite(s)) return chainFailure("the bias scale is not a positive finite number");
  }

  // ---- eps mismatch: out = y * r + C ------------------------------------------
  Match m;
  if (numbers.eps_factor) {
    const std::vector<float>& r = *numbers.eps_factor;
    FoldedChain::EpsMismatch mismatch{tail.chain_eps, tail.eps, *std::min_element(r.begin(), r.end()),
                                      *std::max_element(r.begin(), r.end()), false};
    graph::Value* weight = conv->tryGetInput("weight");
    auto weight_dq = readAffineQuantization(weight ? weight->producer() : nullptr);
    const bool transposed = conv->target().find("transpose") != std::string::npos;
    if (weight_dq && weight_dq->per_channel && per_channel_bias && weight_dq->axis == 0 && !transposed &&
        weight->useCount() == 1 &&
        isConstantTensor(weight_dq->scales) && weight_dq->scales->payload()->view().meta().dtype == ScalarType::kFloat32 &&
        weight_dq->scales->payload()->view().meta().numel() == channels) {
      // Exact: the weight's channel c and its bias both scale by r_c.
      m.new_weight_scales = numerics::scaleByFactor(weight_dq->scales->payload()->view().values<float>(), r);
      scales = numerics::scaleByFactor(scales, r);
      m.new_bias_scales = scales;
      m.weight_dequantize = weight_dq->node;
      mismatch.in_weight_scales = true;
    } else {
      const double deviation =
          std::max(std::fabs(mismatch.factor_max - 1.0), std::fabs(1.0 - mismatch.factor_min));
      if (deviation > options_.eps_tolerance) {
        char why[512];
        std::snprintf(why, sizeof why,
                      "the scale chain's eps %s differs from batch_norm's eps %s; with per-tensor weights the output "
                      "would be off by up to %.3g%%, more than --eps-tolerance %g",
                      formatFloatLikePython(tail.chain_eps).c_str(), formatFloatLikePython(tail.eps).c_str(),
                      100.0 * deviation, options_.eps_tolerance);
        return chainFailure(why);
      }
    }
    m.report.eps_mismatch = mismatch;
  }
  const std::vector<std::int32_t> old_bias =
      prepared ? prepared->values : bias->input->payload()->view().values<std::int32_t>();
  if (static_cast<std::int64_t>(old_bias.size()) != channels) return chainFailure("bias length mismatch");
  numerics::QuantizedBias folded = numerics::addShiftToQuantizedBias(
      old_bias, shift, numerics::BiasQuantization{scales, zero_points, quant_min, quant_max});

  m.batch_norm = &bn;
  m.result = bn.output(0);
  m.conv_output_dq = conv_output_dq;
  m.conv = conv;
  if (prepared) {
    // The new bias carries the prepared values shifted, and the final scales.
    prepared->values = std::move(folded.values);
    if (m.new_bias_scales) prepared->scales = *m.new_bias_scales;
    m.prepared_bias = std::move(prepared);
  } else {
    m.bias = *bias;
    m.copy_bias = bias->input->useCount() > 1 || conv_bias->useCount() > 1;
    m.new_bias = std::move(folded.values);
  }
  m.chain = tail.nodes();
  m.bias_meta = program::TensorMeta::contiguous(ScalarType::kInt32, {channels});
  describeFold(m.report, *conv, bn, channels);
  m.report.per_channel_bias = per_channel_bias;
  m.report.copied_bias = m.copy_bias;
  m.report.clamped = folded.clamped;
  if (output_q) {
    m.report.risk = numerics::outputRangeRisk(shift, output_q->scale, output_q->zero_point, output_q->quant_min,
                                              output_q->quant_max);
    m.report.flagged = m.report.risk.relative_shift > options_.risk_threshold;
  } else {
    // No output quantization right after the conv: no range to clip against.
    m.report.output_quantized = false;
    for (float value : shift) m.report.risk.max_abs_shift = std::max(m.report.risk.max_abs_shift, std::fabs(value));
  }
  return m;
}

namespace {

// Points operand `operand` of `node` at a float32 constant holding `values`:
// the old constant changes in place when `node` alone reads it, else `node`
// gets a new one.
void setFloatConstant(graph::Graph& graph, graph::Node* node, const char* operand, const std::vector<float>& values) {
  graph::Value* old = node->getInput(operand);
  auto meta = program::TensorMeta::contiguous(ScalarType::kFloat32, {static_cast<std::int64_t>(values.size())});
  auto storage = std::make_shared<Storage>(encodeValues(values));
  if (old->useCount() == 1) {
    graph.replaceTensorData(old, meta, storage);
  } else {
    const std::string hint = node->name() + "_" + operand;
    graph.setInput(node, operand, graph.addConstantTensor(old->inputKind(), hint, "b_" + hint, meta, storage));
  }
}

}  // namespace

void FoldQatConvBatchNorm::rewrite(graph::Graph& graph, const Match& m) const {
  if (m.prepared_bias) {
    // The conv had no int32 bias: it gets one holding the folded values.
    QuantizeConvBias().rewrite(graph, *m.prepared_bias);
  } else if (!m.copy_bias) {
    graph.replaceTensorData(m.bias.input, m.bias_meta, std::make_shared<Storage>(encodeValues(m.new_bias)));
  } else {
    // Others read the old bias: this conv gets its own tensor and dequantize.
    graph::Value* own = graph.addConstantTensor(m.bias.input->inputKind(), m.conv->name() + "_folded_bias",
                                                "b_" + m.conv->name() + "_folded_bias", m.bias_meta,
                                                std::make_shared<Storage>(encodeValues(m.new_bias)));
    graph::NodeSpec dequantize;
    dequantize.target = m.bias.node->target();
    dequantize.name_hint = m.conv->name() + "_bias_dequantize";
    dequantize.output_meta = *m.bias.node->output()->meta();
    dequantize.metadata = m.bias.node->metadata();
    for (const graph::Operand& operand : m.bias.node->operands()) {
      if (operand.name == "input") {
        dequantize.inputs.push_back({operand.name, own});
      } else if (operand.values.size() == 1 && operand.values[0] != nullptr) {
        dequantize.inputs.push_back({operand.name, operand.values[0]});
      } else {
        dequantize.inputs.push_back({operand.name, operand.argument()});
      }
    }
    graph::Node* dq = graph.insertNodeBefore(m.conv, dequantize);
    graph.setInput(m.conv, "bias", dq->output());
  }
  if (m.new_weight_scales) {
    setFloatConstant(graph, m.weight_dequantize, "scales", *m.new_weight_scales);
    // A prepared bias was made with its final scales.
    if (!m.prepared_bias) setFloatConstant(graph, m.conv->getInput("bias")->producer(), "scales", *m.new_bias_scales);
  }
  graph.replaceAllUsesWith(m.result, m.conv_output_dq);
  for (graph::Node* node : m.chain) graph.eraseNode(node);
}

bool FoldQatConvBatchNorm::run(graph::Graph& graph, FoldReport& report) const {
  report.risk_threshold = options_.risk_threshold;
  bool changed = false;
  for (graph::Node* node : graph.nodes()) {
    if (!isBatchNorm(*node)) continue;
    MatchResult result = match(*node);
    if (auto* m = std::get_if<Match>(&result)) {
      rewrite(graph, *m);
      if (m->prepared_bias) report.prepared.push_back({m->conv->name(), QuantizeConvBias::describe(*m->prepared_bias)});
      report.recordFolded(m->report);
      changed = true;
    } else {
      const NoMatch& no = std::get<NoMatch>(result);
      report.refuse(node->name(), modulePath(*node), no.reason, no.qat_chain, static_cast<int>(no.stage));
    }
  }
  return changed;
}

}  // namespace qatfold::passes
