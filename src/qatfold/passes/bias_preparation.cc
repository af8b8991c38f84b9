#include "qatfold/passes/bias_preparation.h"

#include "qatfold/passes/batch_norm_tail.h"
#include "qatfold/passes/patterns.h"
#include "qatfold/passes/quantize_conv_bias.h"

namespace qatfold::passes {

std::string_view biasPreparationName(BiasPreparation policy) {
  return kBiasPreparationNames[static_cast<std::size_t>(policy)];
}

const graph::Node* firstInt32BiasReader(const graph::Graph& graph) {
  for (const graph::Node* node : graph.nodes()) {
    if (!isChannelProducer(*node)) continue;
    graph::Value* bias = node->tryGetInput("bias");
    auto quantization = quant::readAffine(bias ? bias->producer() : nullptr);
    if (quantization && quant::isDequantize(quantization->op) && quantization->dtype == program::ScalarType::kInt32) {
      return node;
    }
  }
  return nullptr;
}

const graph::Node* firstQuantizedChainConv(const graph::Graph& graph) {
  for (graph::Node* node : graph.nodes()) {
    if (!isBatchNorm(*node)) continue;
    auto tail = matchBatchNormTail(*node);
    const auto* matched = std::get_if<BatchNormTail>(&tail);
    if (matched == nullptr || matched->divided == nullptr) continue;
    // divided = dq(q(conv(...))): the chain of a conv whose output the quantizer annotated.
    auto output_dq = quant::readAffine(matched->divided->producer());
    auto output_q = output_dq && output_dq->input ? quant::readAffine(output_dq->input->producer()) : std::nullopt;
    const graph::Node* conv = output_q && output_q->input ? output_q->input->producer() : nullptr;
    if (conv != nullptr && QuantizeConvBias::hasQuantizedInputs(*conv)) return conv;
  }
  return nullptr;
}

BiasPreparationDecision decideBiasPreparation(const graph::Graph& graph, BiasPreparation requested) {
  BiasPreparationDecision decision;
  decision.requested = requested;
  if (requested != BiasPreparation::kAuto) {
    decision.applied = requested;
    decision.reason = "requested";
  } else if (const graph::Node* reader = firstInt32BiasReader(graph)) {
    decision.applied = BiasPreparation::kAllConvs;
    decision.reason = "the quantizer encodes conv biases as int32 ('" + reader->name() + "' reads one)";
  } else if (const graph::Node* conv = firstQuantizedChainConv(graph)) {
    decision.applied = BiasPreparation::kAllConvs;
    decision.reason = "the quantizer encodes conv biases as int32 (a QAT chain survives at '" + conv->name() +
                      "': torchao's own fold stops where the bias has an int32 spec)";
  } else {
    decision.applied = BiasPreparation::kFoldedConvs;
    decision.reason = "no conv or linear bias is dequantized from int32, and no QAT chain of a quantized conv survives";
  }
  return decision;
}

}  // namespace qatfold::passes
