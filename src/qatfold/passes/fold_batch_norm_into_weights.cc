#include "qatfold/passes/fold_batch_norm_into_weights.h"

#include <algorithm>

#include "qatfold/numerics/weight_fold.h"
#include "qatfold/passes/batch_norm_tail.h"
#include "qatfold/passes/fold_report.h"
#include "qatfold/passes/patterns.h"
#include "qatfold/program/payload.h"

namespace qatfold::passes {
namespace {

using program::ScalarType;

// Reads a float32 constant, or says why not.
std::variant<std::vector<float>, Refusal> floatConstant(const graph::Value* value, const char* what) {
  if (!isConstantTensor(value)) return plainRefusal(RefusalCode::kConvParameterNotConstant, {what});
  const TensorView view = value->payload()->view();
  if (view.meta().dtype != ScalarType::kFloat32) return plainRefusal(RefusalCode::kConvParameterDtype, {what});
  return view.values<float>();
}

}  // namespace

FoldBatchNormIntoWeights::MatchResult FoldBatchNormIntoWeights::match(graph::Node& bn) const {
  auto result = matchOrWhy(bn);
  if (auto* m = std::get_if<Match>(&result)) return std::move(*m);
  Refusal refusal = std::move(std::get<Refusal>(result));
  // A batch_norm whose input is not a conv, linear or dequantize (a QAT
  // chain, ...) is not this pass's; after one, its reason is the one that matters.
  graph::Value* input = bn.tryGetInput("input");
  const bool after_conv = input != nullptr && input->producer() != nullptr &&
                          (isChannelProducer(*input->producer()) || quant::readAffine(input->producer()));
  refusal.qat_chain = false;
  refusal.stage = after_conv ? MatchStage::kRefused : MatchStage::kNotThisPattern;
  return refusal;
}

std::variant<FoldBatchNormIntoWeights::Match, Refusal> FoldBatchNormIntoWeights::matchOrWhy(graph::Node& bn) const {
  auto eval_or_why = matchEvalBatchNorm(bn);
  if (const auto* why = std::get_if<Refusal>(&eval_or_why)) return *why;
  const EvalBatchNorm& eval = std::get<EvalBatchNorm>(eval_or_why);
  graph::Node* conv = eval.input->producer();
  // dq(q(conv(...))) -> batch_norm: a quantized conv torchao built no QAT chain for.
  if (auto output_dq = quant::readAffine(conv)) {
    auto output_q = quant::readAffine(output_dq->input ? output_dq->input->producer() : nullptr);
    graph::Node* quantized = output_q && output_q->input ? output_q->input->producer() : nullptr;
    if (quantized != nullptr && isChannelProducer(*quantized)) {
      return plainRefusal(RefusalCode::kQuantizedWithoutChain, {quantized->name(), whyNoQatChain(*quantized)});
    }
  }
  if (!isChannelProducer(*conv)) {
    return plainRefusal(RefusalCode::kNotAfterConv, {conv->name(), conv->target()});
  }
  const program::Argument* transposed = conv->tryGetArgument("transposed");
  if (conv->target().find("transpose") != std::string::npos || (transposed && transposed->asBool() == true)) {
    return plainRefusal(RefusalCode::kTransposedConv);
  }
  if (auto use = outsideUse(*eval.input, {&bn})) return plainRefusal(RefusalCode::kConvOutputShared, {*use});
  graph::Value* weight = conv->tryGetInput("weight");
  if (weight != nullptr && weight->producer() != nullptr && quant::readAffine(weight->producer())) {
    return plainRefusal(RefusalCode::kQuantizedWeights, {conv->name()});
  }
  auto weights = floatConstant(weight, "weight");
  if (const auto* why = std::get_if<Refusal>(&weights)) return *why;
  graph::Value* bias = conv->tryGetInput("bias");
  std::optional<std::vector<float>> old_bias;
  if (bias != nullptr) {
    auto values = floatConstant(bias, "bias");
    if (const auto* why = std::get_if<Refusal>(&values)) return *why;
    old_bias = std::get<std::vector<float>>(std::move(values));
  }
  const program::TensorMeta& weight_meta = *weight->payload()->meta.tensor_meta;
  if (weight_meta.sizes.empty()) return plainRefusal(RefusalCode::kScalarWeight);
  const std::int64_t channels = weight_meta.sizes[0];
  if (old_bias && static_cast<std::int64_t>(old_bias->size()) != channels) {
    return plainRefusal(RefusalCode::kConvBiasLength);
  }
  auto values_or_why = readBatchNormValues(eval, channels, eval.eps);
  if (const auto* why = std::get_if<Refusal>(&values_or_why)) return *why;
  const BatchNormValues& values = std::get<BatchNormValues>(values_or_why);
  numerics::FoldedWeights folded = numerics::foldBatchNormIntoWeights(
      std::get<std::vector<float>>(weights), channels,
      old_bias ? std::optional<std::span<const float>>(*old_bias) : std::nullopt, values.parameters());
  for (float v : folded.bias) {
    if (!std::isfinite(v)) return plainRefusal(RefusalCode::kNonFiniteBias);
  }

  Match m;
  m.conv = conv;
  m.batch_norm = &bn;
  m.weight_meta = program::TensorMeta::contiguous(ScalarType::kFloat32, weight_meta.sizes);
  m.new_weight = std::move(folded.weight);
  m.new_bias = std::move(folded.bias);
  m.kind = weight->inputKind();
  describeFold(m.report, *conv, bn, channels);
  m.report.float_bias = true;
  m.report.output_quantized = false;
  m.report.scaled_weights = true;
  return m;
}

void FoldBatchNormIntoWeights::rewrite(graph::Graph& graph, const Match& m) const {
  const std::string path = modulePath(*m.conv);
  const std::string prefix = path.empty() ? m.conv->name() : path;
  const auto channels = static_cast<std::int64_t>(m.new_bias.size());
  // New tensors, not edits in place: the old weight may be tied to others.
  graph::Value* weight =
      graph.addConstantTensor(m.kind, prefix + ".folded_weight", "p_" + m.conv->name() + "_folded_weight",
                              m.weight_meta, std::make_shared<Storage>(encodeValues(m.new_weight)));
  graph::Value* bias =
      graph.addConstantTensor(m.kind, prefix + ".folded_bias", "p_" + m.conv->name() + "_folded_bias",
                              program::TensorMeta::contiguous(program::ScalarType::kFloat32, {channels}),
                              std::make_shared<Storage>(encodeValues(m.new_bias)));
  graph.setInput(m.conv, "weight", weight);
  graph.setInput(m.conv, "bias", bias, "weight");
  graph.replaceAllUsesWith(m.batch_norm->output(0), m.conv->output());
  graph.eraseNode(m.batch_norm);
}

bool FoldBatchNormIntoWeights::appliesTo(const graph::Graph& graph) {
  const auto nodes = graph.nodes();
  return std::any_of(nodes.begin(), nodes.end(),
                     [](const graph::Node* n) { return n->target().rfind("torch.ops.quantized_decomposed.", 0) == 0; });
}

}  // namespace qatfold::passes
