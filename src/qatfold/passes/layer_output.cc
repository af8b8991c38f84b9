#include "qatfold/passes/layer_output.h"

#include <array>
#include <utility>

#include "qatfold/passes/patterns.h"
#include "qatfold/passes/requantize_pair.h"

namespace qatfold::passes {
namespace {

// The look-through patterns, tried in order at each step back from the batch_norm.
constexpr std::array kLookThroughs{
    &lookThroughRequantizePair,
};

// A layer whose weight is dequantized: a quantized layer (a float one is
// FoldBatchNormIntoWeights' case).
bool hasDequantizedWeight(const graph::Node& layer) {
  const graph::Value* weight = layer.tryGetInput("weight");
  const auto dq = quant::readAffine(weight ? weight->producer() : nullptr);
  return dq && quant::isDequantize(dq->op);
}

}  // namespace

std::variant<LayerOutput, Refusal> findLayerOutput(graph::Node& batch_norm, graph::Value& input) {
  LayerOutput out;
  // Back from the batch_norm through what the look-throughs see past.
  graph::Value* read = &input;
  const graph::Node* reader = &batch_norm;
  std::vector<std::pair<graph::Value*, const graph::Node*>> passed_values;  // each with its one reader
  for (bool moved = true; moved;) {
    moved = false;
    for (LookThrough look : kLookThroughs) {
      auto seen = look(*read, *reader);
      if (!seen) continue;
      if (auto* why = std::get_if<Refusal>(&*seen)) return *why;
      auto& passed = std::get<LookedThrough>(*seen);
      passed_values.emplace_back(passed.behind, passed.reader);
      read = passed.behind;
      reader = passed.reader;
      out.looked_through.push_back(std::move(passed.description));
      moved = true;
      break;
    }
  }

  graph::Node* from = read->producer();
  if (from == nullptr) return plainRefusal(RefusalCode::kInputNotComputed);
  out.dequantize = quant::readAffine(from);
  if (out.dequantize && out.dequantize->op == quant::Op::kDequantizePerTensor && out.dequantize->input != nullptr) {
    out.quantize = quant::readAffine(out.dequantize->input->producer());
  }
  if (out.quantize && out.quantize->op == quant::Op::kQuantizePerTensor && out.quantize->input != nullptr) {
    out.layer = out.quantize->input->producer();
  }
  if (out.layer == nullptr && out.looked_through.empty() && isChannelProducer(*from) && hasDequantizedWeight(*from)) {
    out.layer = from;
    out.quantize.reset();
    out.dequantize.reset();
    if (auto use = outsideUse(*out.layer->output(), {&batch_norm}))
      return chainFailure(RefusalCode::kConvOutputShared, {*use});
    return out;
  }
  if (out.layer == nullptr || !isChannelProducer(*out.layer) ||
      !quant::sameParameters(*out.quantize, *out.dequantize)) {
    return plainRefusal(RefusalCode::kNotAfterConv, {from->name(), from->target()});
  }
  passed_values.insert(passed_values.end(), {{out.layer->output(), out.quantize->node},
                                             {out.quantize->node->output(), out.dequantize->node},
                                             {out.dequantize->node->output(), reader}});
  for (auto [value, value_reader] : passed_values) {
    if (auto use = outsideUse(*value, {value_reader}))
      return chainFailure(RefusalCode::kQuantizedOutputShared, {out.layer->name(), *use});
  }
  return out;
}

}  // namespace qatfold::passes
