#include "qatfold/passes/bias_preparation.h"

#include "qatfold/passes/patterns.h"

namespace qatfold::passes {

std::string_view biasPreparationName(BiasPreparation policy) {
  return kBiasPreparationNames[static_cast<std::size_t>(policy)];
}

const graph::Node* firstInt32BiasReader(const graph::Graph& graph) {
  for (const graph::Node* node : graph.nodes()) {
    if (!isChannelProducer(*node)) continue;
    graph::Value* bias = node->tryGetInput("bias");
    auto quantization = readAffineQuantization(bias ? bias->producer() : nullptr);
    if (quantization && quantization->node->target() != op::kQuantizePerTensor &&
        quantization->dtype == program::ScalarType::kInt32) {
      return node;
    }
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
  } else {
    decision.applied = BiasPreparation::kFoldedConvs;
    decision.reason = "no conv or linear bias is dequantized from int32";
  }
  return decision;
}

}  // namespace qatfold::passes
