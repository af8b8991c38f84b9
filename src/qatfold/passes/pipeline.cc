#include "qatfold/passes/pipeline.h"

#include "qatfold/passes/fold_batch_norm_into_weights.h"
#include "qatfold/passes/fold_float_conv_bn.h"
#include "qatfold/passes/fold_qat_conv_bn.h"
#include "qatfold/passes/quantize_conv_bias.h"

namespace qatfold::passes {

FoldReport runFoldPipeline(graph::Graph& graph, const FoldOptions& options) {
  FoldReport report;
  report.risk_threshold = options.risk_threshold;
  QuantizeConvBias().run(graph, report);
  graph.lint();
  FoldQatConvBatchNorm({options.risk_threshold, options.eps_tolerance}).run(graph, report);
  graph.lint();
  FoldFloatConvBatchNorm().run(graph, report);
  graph.lint();
  FoldBatchNormIntoWeights().run(graph, report);
  graph.lint();
  report.removed_nodes = graph.eliminateDeadCode();
  report.removed_constants = graph.removeUnusedConstants();
  graph.lint();
  return report;
}

}  // namespace qatfold::passes
