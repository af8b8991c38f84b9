#include "qatfold/passes/registry.h"

#include "qatfold/passes/fold_batch_norm_into_weights.h"
#include "qatfold/passes/fold_float_conv_bn.h"
#include "qatfold/passes/fold_qat_conv_bn.h"
#include "qatfold/passes/quantize_conv_bias.h"

namespace qatfold::passes {
namespace {

constexpr std::string_view kBiasOptions[] = {"bias_preparation"};
constexpr std::string_view kChainOptions[] = {"risk_threshold", "eps_tolerance"};

constexpr PassInfo kPipeline[] = {
    {"QuantizeConvBias",
     "Give every conv with dequantized input and weight an int32 bias (zero if missing, float biases quantized "
     "with s_in * s_w), when the program already encodes conv biases as int32 (else only folded convs get one)",
     kBiasOptions,
     [](graph::Graph& graph, const PassContext& context, FoldReport& report) {
       // Under kFoldedConvs the chain fold prepares the biases of the convs it folds.
       if (context.bias_policy == BiasPreparation::kAllConvs) QuantizeConvBias().run(graph, report);
     }},
    {"FoldQatConvBatchNorm",
     "Fold the QAT conv -> q/dq -> div -> [add] -> batch_norm chain into the conv's int32 bias (giving a conv "
     "without one the bias QuantizeConvBias would)",
     kChainOptions,
     [](graph::Graph& graph, const PassContext& context, FoldReport& report) {
       FoldQatConvBatchNorm({context.options.risk_threshold, context.options.eps_tolerance}).run(graph, report);
     }},
    {"FoldFloatConvBatchNorm",
     "Fold the QAT conv -> div -> [add] -> batch_norm chain of an unquantized conv (no q/dq) into a float conv bias",
     {},
     [](graph::Graph& graph, const PassContext&, FoldReport& report) { FoldFloatConvBatchNorm().run(graph, report); }},
    {"FoldBatchNormIntoWeights",
     "In quantized programs, fold a plain eval batch_norm right after an unquantized conv or linear into its float "
     "weight and bias",
     {},
     [](graph::Graph& graph, const PassContext&, FoldReport& report) { FoldBatchNormIntoWeights().run(graph, report); }},
    // Clean-up only after a change: a program nothing folded stays as it came.
    {"EliminateDeadCode", "Remove side-effect-free nodes whose results nothing reads", {},
     [](graph::Graph& graph, const PassContext&, FoldReport& report) {
       if (graph.mutationCount() > 0) report.removed_nodes = graph.eliminateDeadCode();
     }},
    {"RemoveUnusedConstants",
     "Drop parameters, buffers and constants the fold left unused, with their signature entries and payloads", {},
     [](graph::Graph& graph, const PassContext&, FoldReport& report) {
       if (graph.mutationCount() > 0) report.removed_constants = graph.removeUnusedConstants();
     }},
};

}  // namespace

std::span<const PassInfo> foldPipeline() { return kPipeline; }

std::string describeFoldPipeline() {
  std::string text = "Fold pipeline:\n";
  for (const PassInfo& pass : foldPipeline()) {
    text += "  " + std::string(pass.name) + ": " + std::string(pass.summary);
    std::string flags;
    for (std::string_view option : pass.options) {
      if (const FoldOptionInfo* info = findFoldOption(option)) {
        flags += (flags.empty() ? "" : ", ") + std::string(info->cli_flag) + " / " + std::string(info->python_name);
      }
    }
    if (!flags.empty()) text += " [" + flags + "]";
    text += "\n";
  }
  return text;
}

}  // namespace qatfold::passes
