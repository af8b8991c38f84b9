#include "qatfold/passes/pipeline.h"

#include "qatfold/passes/patterns.h"
#include "qatfold/passes/registry.h"

namespace qatfold::passes {
namespace {

// The mistakes a program shows before any pass runs. A batch_norm in
// training mode means the whole program was exported for training: no pass
// runs, so it comes out byte for byte (returns true).
bool checkProgram(const graph::Graph& graph, FoldReport& report) {
  std::size_t batch_norms = 0;
  std::vector<const graph::Node*> training;
  for (const graph::Node* node : graph.nodes()) {
    if (!isBatchNorm(*node)) continue;
    ++batch_norms;
    if (isTrainingBatchNorm(*node)) training.push_back(node);
  }
  report.quantized_program = quant::holdsQuantization(graph);
  report.batch_norms = batch_norms;
  if (!training.empty()) {
    std::string names;
    for (const graph::Node* node : training) {
      names += (names.empty() ? "" : ", ") + node->name();
      report.refuse(node->name(), modulePath(*node),
                    plainRefusal(RefusalCode::kTrainingMode, {}, MatchStage::kRefused));
    }
    report.warnings.push_back(std::to_string(training.size()) + " batch_norm(s) run in training mode (" + names +
                              "): the model was exported in training mode; call torchao's "
                              "move_exported_model_to_eval(prepared) before convert_pt2e and torch.export.export. "
                              "Nothing was changed");
    return true;
  }
  if (batch_norms > 0 && !report.quantized_program) {
    report.warnings.push_back(std::to_string(batch_norms) +
                              " batch_norm(s) and no quantize or dequantize op: the program is not quantized (a "
                              "quantizer that annotated nothing, such as Cadence's after a non-strict "
                              "torch.export: capture with torch.export.export(..., strict=True) before "
                              "prepare_qat_pt2e); batch_norms fold into float weights and biases only");
  }
  return false;
}

}  // namespace

FoldReport runFoldPipeline(graph::Graph& graph, const FoldOptions& options) {
  FoldReport report;
  report.risk_threshold = options.risk_threshold;
  if (checkProgram(graph, report)) {
    report.bias_preparation = {"none", std::string(biasPreparationName(options.bias_preparation)),
                               "no pass runs on a program in training mode"};
    return report;
  }
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
  // In a program never quantized no QAT chain was to be expected: say what
  // is the matter instead of that the chain is missing.
  if (!report.quantized_program) {
    for (SkippedBatchNorm& skipped : report.skipped) {
      if (skipped.refusal.code == RefusalCode::kNotAChain) skipped.refusal.code = RefusalCode::kNotQuantized;
    }
  }
  // Bias preparation serves the folds (registry.cc runs it after them):
  // where none folded it prepared nothing, unless every conv was asked for.
  if (report.folded.empty() && bias.applied == BiasPreparation::kAllConvs &&
      options.bias_preparation == BiasPreparation::kAuto) {
    report.bias_preparation.reason += "; nothing folded, so no bias was prepared";
  }
  return report;
}

}  // namespace qatfold::passes
