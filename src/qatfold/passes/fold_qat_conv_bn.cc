#include "qatfold/passes/fold_qat_conv_bn.h"

#include <cmath>

#include "qatfold/numerics/bias_fold.h"
#include "qatfold/program/payload.h"

namespace qatfold::passes {
namespace {

using program::ScalarType;
using NoMatch = FoldQatConvBatchNorm::NoMatch;

NoMatch chainFailure(std::string reason) { return NoMatch{std::move(reason), true}; }

// The float32 elements of a constant with `channels` elements, or why not.
std::variant<std::vector<float>, std::string> constantChannels(const graph::Value* value, std::int64_t channels,
                                                               const char* what) {
  if (!isConstantTensor(value)) return std::string(what) + " is not a constant parameter, buffer or tensor constant";
  const TensorView view = value->payload()->view();
  if (view.meta().dtype != ScalarType::kFloat32) {
    return std::string(what) + " has dtype " + program::scalarTypeName(view.meta().dtype) + ", not float32";
  }
  if (view.meta().numel() != channels) {
    return std::string(what) + " has " + std::to_string(view.meta().numel()) + " elements for " +
           std::to_string(channels) + " channels";
  }
  return view.values<float>();
}

// A reshape/view to [1, C or -1, 1, ...] of `rank` dims: a per-channel broadcast.
bool isChannelBroadcast(const graph::Node& reshape, std::size_t rank, std::int64_t channels) {
  const program::Argument* shape = reshape.tryGetArgument(reshape.target() == op::kView ? "size" : "shape");
  auto dims = shape ? shape->asInts() : std::nullopt;
  if (!dims || dims->size() != rank || rank < 2) return false;
  for (std::size_t i = 0; i < dims->size(); ++i) {
    if (i == 1 ? ((*dims)[i] != -1 && (*dims)[i] != channels) : (*dims)[i] != 1) return false;
  }
  return true;
}

}  // namespace

FoldQatConvBatchNorm::MatchResult FoldQatConvBatchNorm::match(graph::Node& bn) const {
  // ---- structure: the batch_norm and its inputs --------------------------------
  if (!isBatchNorm(bn)) return NoMatch{"not a batch_norm", false};
  if (bn.target() == op::kBatchNorm) {
    const program::Argument* training = bn.tryGetArgument("training");
    if (training == nullptr || training->asBool() != false) return NoMatch{"batch_norm runs in training mode", false};
  } else {
    if (bn.outputs().size() != 3) return NoMatch{"batch_norm has an unexpected number of outputs", false};
    for (std::size_t i = 1; i < 3; ++i) {
      if (bn.output(i)->useCount() != 0) {
        return NoMatch{"batch_norm's saved statistics '" + bn.output(i)->name() + "' are used", false};
      }
    }
  }
  if (bn.outputs().empty()) return NoMatch{"batch_norm has no output", false};
  const program::Argument* eps_argument = bn.tryGetArgument("eps");
  auto bn_eps = eps_argument ? eps_argument->asFloat() : std::nullopt;
  if (!bn_eps) return NoMatch{"batch_norm eps is not a constant", false};
  graph::Value* bn_input = bn.tryGetInput("input");
  graph::Value* bn_weight = bn.tryGetInput("weight");
  graph::Value* bn_bias = bn.tryGetInput("bias");
  graph::Value* bn_mean = bn.tryGetInput("running_mean");
  graph::Value* bn_var = bn.tryGetInput("running_var");
  if (bn_input == nullptr || bn_input->producer() == nullptr) return NoMatch{"input is not computed by an op", false};

  // Optional add(div, reshape(orig_bias)), then div(y_dq, reshape(scale)).
  graph::Node* add_orig_bias = producerWith(bn_input, op::kAdd);
  graph::Node* div = nullptr;
  graph::Node* reshape_orig_bias = nullptr;
  if (add_orig_bias != nullptr) {
    graph::Value* lhs = add_orig_bias->tryGetInput("self");
    graph::Value* rhs = add_orig_bias->tryGetInput("other");
    div = producerWith(lhs, op::kDiv);
    reshape_orig_bias = rhs ? rhs->producer() : nullptr;
    if (div == nullptr) {  // add is commutative: accept add(reshape(b), div)
      div = producerWith(rhs, op::kDiv);
      reshape_orig_bias = lhs ? lhs->producer() : nullptr;
    }
    if (div == nullptr) return NoMatch{"input is an add without a div operand: not a QAT chain", false};
    const program::Argument* alpha = add_orig_bias->tryGetArgument("alpha");
    if (alpha != nullptr && alpha->asFloat() != 1.0) return chainFailure("the orig_bias add has alpha != 1");
    if (reshape_orig_bias == nullptr || !isReshape(*reshape_orig_bias)) {
      return chainFailure("the orig_bias operand of the add is not a reshape/view of a constant");
    }
  } else {
    div = producerWith(bn_input, op::kDiv);
    if (div == nullptr) {
      return NoMatch{"input comes from '" + bn_input->producer()->name() + "' (" + bn_input->producer()->target() +
                         "), not from a QAT conv chain",
                     false};
    }
  }
  graph::Value* conv_output_dq = div->tryGetInput("self");
  graph::Node* reshape_scale = div->tryGetInput("other") ? div->tryGetInput("other")->producer() : nullptr;
  auto output_dq = readAffineQuantization(conv_output_dq ? conv_output_dq->producer() : nullptr);
  if (!output_dq || output_dq->node->target() != op::kDequantizePerTensor) {
    return chainFailure("the divided value is not dequantized per tensor (no quantize/dequantize after the conv)");
  }
  auto output_q = readAffineQuantization(output_dq->input->producer());
  if (!output_q || output_q->node->target() != op::kQuantizePerTensor) {
    return chainFailure("the dequantize after the conv is not fed by quantize_per_tensor");
  }
  if (output_q->scale != output_dq->scale || output_q->zero_point != output_dq->zero_point ||
      output_q->quant_min != output_dq->quant_min || output_q->quant_max != output_dq->quant_max) {
    return chainFailure("the quantize/dequantize pair after the conv disagree on their parameters");
  }
  graph::Value* conv_output = output_q->input;
  graph::Node* conv = conv_output->producer();
  if (conv == nullptr || !isConvolution(*conv)) return chainFailure("the quantized value is not a convolution output");
  graph::Value* conv_bias = conv->tryGetInput("bias");
  auto bias = readAffineQuantization(conv_bias ? conv_bias->producer() : nullptr);
  if (!bias || bias->node->target() == op::kQuantizePerTensor || bias->dtype != ScalarType::kInt32) {
    return chainFailure("conv '" + conv->name() + "' has no int32 dequantized bias (are its input and weight quantized?)");
  }
  if (!isConstantTensor(bias->input) || bias->input->payload()->meta.tensor_meta->dtype != ScalarType::kInt32) {
    return chainFailure("the bias of conv '" + conv->name() + "' is not a constant int32 tensor");
  }

  // The scale chain must be this BN's own: div(bn_w, sqrt(add(bn_var, eps))).
  if (reshape_scale == nullptr || !isReshape(*reshape_scale)) return chainFailure("the divisor is not a reshape/view");
  graph::Node* scale = producerWith(reshape_scale->tryGetInput("self"), op::kDiv);
  graph::Node* sqrt = scale ? producerWith(scale->tryGetInput("other"), op::kSqrt) : nullptr;
  graph::Node* add_eps = sqrt ? producerWith(sqrt->tryGetInput("self"), op::kAdd) : nullptr;
  if (add_eps == nullptr) return chainFailure("the divisor is not bn_weight / sqrt(running_var + eps)");
  if (scale->tryGetInput("self") != bn_weight || add_eps->tryGetInput("self") != bn_var || bn_weight == nullptr ||
      bn_var == nullptr) {
    return chainFailure("the divisor is not built from this batch_norm's own weight and running_var");
  }
  const program::Argument* chain_eps_argument = add_eps->tryGetArgument("other");
  auto chain_eps = chain_eps_argument ? chain_eps_argument->asFloat() : std::nullopt;
  if (!chain_eps) return chainFailure("the eps added to running_var is not a constant");
  if (*chain_eps != *bn_eps) {
    return chainFailure("the scale chain's eps " + formatFloatLikePython(*chain_eps) + " differs from batch_norm's eps " +
                        formatFloatLikePython(*bn_eps));
  }

  // Every chain value is read only inside the chain.
  struct Exclusive {
    const graph::Value* value;
    std::vector<const graph::Node*> readers;
  };
  std::vector<Exclusive> exclusive = {{conv_output, {output_q->node}},
                                      {output_q->node->output(), {output_dq->node}},
                                      {conv_output_dq, {div}},
                                      {div->output(), {add_orig_bias ? add_orig_bias : &bn}},
                                      {reshape_scale->output(), {div}},
                                      {scale->output(), {reshape_scale}},
                                      {sqrt->output(), {scale}},
                                      {add_eps->output(), {sqrt}}};
  if (add_orig_bias != nullptr) {
    exclusive.push_back({add_orig_bias->output(), {&bn}});
    exclusive.push_back({reshape_orig_bias->output(), {add_orig_bias}});
  }
  for (const Exclusive& entry : exclusive) {
    if (auto use = outsideUse(*entry.value, entry.readers)) return chainFailure(*use + " outside the chain");
  }

  // ---- data: constant parameters, channels, numerics ---------------------------
  const std::int64_t channels = bias->input->payload()->meta.tensor_meta->numel();
  const program::TensorMeta* out_meta = conv_output->meta();
  if (out_meta == nullptr || out_meta->symbolic) return chainFailure("conv output shape is unknown");
  if (!isChannelBroadcast(*reshape_scale, out_meta->sizes.size(), channels)) {
    return chainFailure("the divisor is not broadcast along the conv's channel dimension");
  }
  if (reshape_orig_bias != nullptr && !isChannelBroadcast(*reshape_orig_bias, out_meta->sizes.size(), channels)) {
    return chainFailure("orig_bias is not broadcast along the conv's channel dimension");
  }
  auto weight = constantChannels(bn_weight, channels, "batch_norm weight");
  auto shift_bias = constantChannels(bn_bias, channels, "batch_norm bias");
  auto mean = constantChannels(bn_mean, channels, "running_mean");
  auto var = constantChannels(bn_var, channels, "running_var");
  for (const auto* tensor : {&weight, &shift_bias, &mean, &var}) {
    if (const auto* why = std::get_if<std::string>(tensor)) return chainFailure(*why);
  }
  std::optional<std::vector<float>> orig_bias;
  if (reshape_orig_bias != nullptr) {
    auto values = constantChannels(reshape_orig_bias->tryGetInput("self"), channels, "orig_bias");
    if (const auto* why = std::get_if<std::string>(&values)) return chainFailure(*why);
    orig_bias = std::get<std::vector<float>>(std::move(values));
  }
  numerics::BatchNormParameters bn_parameters{std::get<std::vector<float>>(weight), std::get<std::vector<float>>(shift_bias),
                                              std::get<std::vector<float>>(mean), std::get<std::vector<float>>(var),
                                              static_cast<float>(*bn_eps)};
  for (std::size_t c = 0; c < bn_parameters.running_var.size(); ++c) {
    // An infinite variance makes the un-folded chain compute inf/inf; only a
    // positive finite one gives a shift the fold can reproduce.
    const float var_eps = bn_parameters.running_var[c] + bn_parameters.eps;
    if (!(var_eps > 0.0f) || !std::isfinite(var_eps)) {
      return chainFailure("running_var + eps is " + formatFloatLikePython(var_eps) + " for channel " +
                          std::to_string(c) + ", not a positive finite number");
    }
  }
  const std::vector<float> shift = numerics::batchNormShift(
      bn_parameters, orig_bias ? std::optional<std::span<const float>>(*orig_bias) : std::nullopt);
  for (float value : shift) {
    if (!std::isfinite(value)) return chainFailure("the batch_norm parameters give a non-finite shift");
  }

  std::vector<float> scales;
  std::vector<std::int64_t> zero_points;
  if (!bias->per_channel) {
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
  const std::vector<std::int32_t> old_bias = bias->input->payload()->view().values<std::int32_t>();
  if (static_cast<std::int64_t>(old_bias.size()) != channels) return chainFailure("bias length mismatch");
  numerics::QuantizedBias folded = numerics::addShiftToQuantizedBias(
      old_bias, shift, numerics::BiasQuantization{scales, zero_points, bias->quant_min, bias->quant_max});

  Match m;
  m.batch_norm = &bn;
  m.result = bn.output(0);
  m.conv_output_dq = conv_output_dq;
  m.conv = conv;
  m.bias = *bias;
  m.copy_bias = bias->input->useCount() > 1 || conv_bias->useCount() > 1;
  m.chain = {&bn};
  if (add_orig_bias) m.chain.insert(m.chain.end(), {add_orig_bias, reshape_orig_bias});
  m.chain.insert(m.chain.end(), {div, reshape_scale, scale, sqrt, add_eps});
  m.bias_meta = program::TensorMeta::contiguous(ScalarType::kInt32, {channels});
  m.new_bias = std::move(folded.values);
  m.report.conv = conv->name();
  m.report.conv_target = conv->target();
  m.report.module_path = modulePath(*conv);
  m.report.batch_norm = bn.name();
  m.report.channels = channels;
  m.report.per_channel_bias = bias->per_channel;
  m.report.copied_bias = m.copy_bias;
  m.report.clamped = folded.clamped;
  m.report.risk = numerics::outputRangeRisk(shift, output_q->scale, output_q->zero_point, output_q->quant_min,
                                            output_q->quant_max);
  m.report.flagged = m.report.risk.relative_shift > options_.risk_threshold;
  return m;
}

void FoldQatConvBatchNorm::rewrite(graph::Graph& graph, const Match& m) const {
  auto storage = std::make_shared<Storage>(encodeValues(m.new_bias));
  if (!m.copy_bias) {
    graph.replaceTensorData(m.bias.input, m.bias_meta, storage);
  } else {
    // Others read the old bias: this conv gets its own tensor and dequantize.
    graph::Value* own = graph.addConstantTensor(m.bias.input->inputKind(), m.conv->name() + "_folded_bias",
                                                "b_" + m.conv->name() + "_folded_bias", m.bias_meta, storage);
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
        dequantize.inputs.push_back({operand.name, operand.argument});
      }
    }
    graph::Node* dq = graph.insertNodeBefore(m.conv, dequantize);
    graph.setInput(m.conv, "bias", dq->output());
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
      report.folded.push_back(m->report);
      changed = true;
    } else {
      const NoMatch& no = std::get<NoMatch>(result);
      report.skipped.push_back({node->name(), modulePath(*node), no.reason, no.qat_chain});
    }
  }
  return changed;
}

}  // namespace qatfold::passes
