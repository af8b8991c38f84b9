#include "qatfold/passes/fold_float_conv_bn.h"

#include "qatfold/numerics/bias_fold.h"
#include "qatfold/passes/batch_norm_tail.h"
#include "qatfold/passes/patterns.h"
#include "qatfold/program/payload.h"

namespace qatfold::passes {
namespace {

using program::ScalarType;

}  // namespace

FoldFloatConvBatchNorm::MatchResult FoldFloatConvBatchNorm::match(graph::Node& bn) const {
  // ---- structure ------------------------------------------------------------------
  auto tail_or_why = matchBatchNormTail(bn);
  if (const auto* why = std::get_if<TailMismatch>(&tail_or_why)) return *why;
  const BatchNormTail& tail = std::get<BatchNormTail>(tail_or_why);
  graph::Node* conv = tail.divided->producer();
  if (conv == nullptr || !isChannelProducer(*conv)) {
    // A quantize/dequantize after the conv: FoldQatConvBatchNorm's kind of chain.
    return otherKindOfChain("the divided value is not the output of an unquantized conv or linear");
  }
  if (auto use = outsideUse(*tail.divided, {tail.div})) return chainFailure(*use + " outside the chain");
  graph::Value* bias = conv->tryGetInput("bias");
  graph::Node* bias_producer = bias ? bias->producer() : nullptr;
  const bool zero_bias = bias == nullptr || (bias_producer != nullptr && bias_producer->target() == op::kZerosLike);
  if (!zero_bias && !isConstantTensor(bias)) {
    if (readAffineQuantization(bias_producer)) {
      return otherKindOfChain("conv '" + conv->name() + "' has a quantized bias but no quantize/dequantize on its output");
    }
    return chainFailure("the bias of conv '" + conv->name() + "' is not a float constant");
  }

  // ---- data -----------------------------------------------------------------------
  const program::TensorMeta* out_meta = tail.divided->meta();
  if (out_meta == nullptr || out_meta->symbolic || out_meta->sizes.size() < 2) {
    return chainFailure("conv output shape is unknown");
  }
  const std::int64_t channels = out_meta->sizes[1];
  auto numbers_or_why = batchNormNumbers(tail, channels, out_meta->sizes.size());
  if (const auto* why = std::get_if<std::string>(&numbers_or_why)) return chainFailure(*why);
  const TailNumbers& numbers = std::get<TailNumbers>(numbers_or_why);
  if (numbers.eps_factor) {
    return chainFailure("the scale chain's eps " + formatFloatLikePython(tail.chain_eps) + " differs from batch_norm's eps " +
                        formatFloatLikePython(tail.eps) + " (folded only for quantized convs)");
  }
  const std::vector<float>& shift = numbers.shift;
  std::optional<std::vector<float>> old_bias;
  if (!zero_bias) {
    const TensorView view = bias->payload()->view();
    if (view.meta().dtype != ScalarType::kFloat32 || view.meta().numel() != channels) {
      return chainFailure("the bias of conv '" + conv->name() + "' is not float32 with one value per channel");
    }
    old_bias = view.values<float>();
  }

  Match m;
  m.conv = conv;
  m.result = tail.result();
  m.chain = tail.nodes();
  m.new_bias = numerics::addShiftToFloatBias(
      old_bias ? std::optional<std::span<const float>>(*old_bias) : std::nullopt, shift);
  if (!zero_bias) m.bias_kind = bias->inputKind();
  describeFold(m.report, *conv, bn, channels);
  m.report.float_bias = true;
  m.report.output_quantized = false;
  for (float value : shift) m.report.risk.max_abs_shift = std::max(m.report.risk.max_abs_shift, std::fabs(value));
  return m;
}

void FoldFloatConvBatchNorm::rewrite(graph::Graph& graph, const Match& m) const {
  const auto channels = static_cast<std::int64_t>(m.new_bias.size());
  // Named after the conv's module when known: "layer1.conv.folded_bias".
  const std::string path = modulePath(*m.conv);
  const std::string fqn = (path.empty() ? m.conv->name() : path) + ".folded_bias";
  graph::Value* bias = graph.addConstantTensor(
      m.bias_kind, fqn, "p_" + m.conv->name() + "_folded_bias",
      program::TensorMeta::contiguous(ScalarType::kFloat32, {channels}),
      std::make_shared<Storage>(encodeValues(m.new_bias)));
  graph.setInput(m.conv, "bias", bias, "weight");
  graph.replaceAllUsesWith(m.result, m.conv->output());
  for (graph::Node* node : m.chain) graph.eraseNode(node);
}

bool FoldFloatConvBatchNorm::run(graph::Graph& graph, FoldReport& report) const {
  bool changed = false;
  for (graph::Node* node : graph.nodes()) {
    if (!isBatchNorm(*node)) continue;
    MatchResult result = match(*node);
    auto* m = std::get_if<Match>(&result);
    if (m == nullptr) {
      const NoMatch& no = std::get<NoMatch>(result);
      report.refuse(node->name(), modulePath(*node), no.reason, no.qat_chain, static_cast<int>(no.stage));
      continue;
    }
    rewrite(graph, *m);
    report.recordFolded(m->report);
    changed = true;
  }
  return changed;
}

}  // namespace qatfold::passes
