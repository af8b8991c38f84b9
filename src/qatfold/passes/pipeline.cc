#include "qatfold/passes/pipeline.h"

#include "qatfold/passes/fold_batch_norm_into_weights.h"
#include "qatfold/passes/fold_float_conv_bn.h"
#include "qatfold/passes/fold_qat_conv_bn.h"
#include "qatfold/passes/quantize_conv_bias.h"

namespace qatfold::passes {

namespace {

// Between passes the graph is linted in Debug and sanitizer builds, which
// already lint after every mutation; release builds lint once, before the
// result leaves the pipeline (a lint walks the whole graph).
void lintBetweenPasses([[maybe_unused]] const graph::Graph& graph) {
#ifdef QATFOLD_LINT_MUTATIONS
  graph.lint();
#endif
}

}  // namespace

FoldReport runFoldPipeline(graph::Graph& graph, const FoldOptions& options) {
  FoldReport report;
  report.risk_threshold = options.risk_threshold;
  const BiasPreparationDecision bias = decideBiasPreparation(graph, options.bias_preparation);
  report.bias_preparation = {std::string(biasPreparationName(bias.applied)),
                             std::string(biasPreparationName(bias.requested)), bias.reason};
  // Under kFoldedConvs the chain fold prepares the biases of the convs it folds.
  if (bias.applied == BiasPreparation::kAllConvs) {
    QuantizeConvBias().run(graph, report);
    lintBetweenPasses(graph);
  }
  FoldQatConvBatchNorm({options.risk_threshold, options.eps_tolerance}).run(graph, report);
  lintBetweenPasses(graph);
  FoldFloatConvBatchNorm().run(graph, report);
  lintBetweenPasses(graph);
  FoldBatchNormIntoWeights().run(graph, report);
  lintBetweenPasses(graph);
  // Clean up only after a change: a program nothing folded stays as it came.
  if (graph.mutationCount() > 0) {
    report.removed_nodes = graph.eliminateDeadCode();
    report.removed_constants = graph.removeUnusedConstants();
    graph.lint();
  }
  report.changed = graph.mutationCount() > 0;
  return report;
}

}  // namespace qatfold::passes
