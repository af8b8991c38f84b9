#include "qatfold/passes/pipeline.h"

#include "qatfold/passes/registry.h"

namespace qatfold::passes {

FoldReport runFoldPipeline(graph::Graph& graph, const FoldOptions& options) {
  FoldReport report;
  report.risk_threshold = options.risk_threshold;
  const BiasPreparationDecision bias = decideBiasPreparation(graph, options.bias_preparation);
  report.bias_preparation = {std::string(biasPreparationName(bias.applied)),
                             std::string(biasPreparationName(bias.requested)), bias.reason};
  const PassContext context{options, bias.applied};
  for (const PassInfo& pass : foldPipeline()) {
    pass.run(graph, context, report);
#ifdef QATFOLD_LINT_MUTATIONS
    graph.lint();  // Debug and sanitizer builds; they also lint after every mutation
#endif
  }
  // Release builds lint once, before the result leaves the pipeline.
  if (graph.mutationCount() > 0) graph.lint();
  report.changed = graph.mutationCount() > 0;
  return report;
}

}  // namespace qatfold::passes
