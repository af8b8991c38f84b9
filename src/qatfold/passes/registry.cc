#include "qatfold/passes/registry.h"

#include "qatfold/passes/batch_norm_driver.h"
#include "qatfold/passes/fold_batch_norm_into_weight_scales.h"
#include "qatfold/passes/fold_batch_norm_into_weights.h"
#include "qatfold/passes/fold_conv_batch_norm_chain.h"
#include "qatfold/passes/quantize_conv_bias.h"

namespace qatfold::passes {
namespace {

constexpr std::string_view kBiasOptions[] = {"bias_preparation"};
constexpr std::string_view kChainOptions[] = {"risk_threshold", "eps_tolerance", "output_range", "per_tensor_weights"};
constexpr std::string_view kScaleOptions[] = {"quantized_batch_norm", "per_tensor_weights"};

constexpr PassInfo kPipeline[] = {
    {"FoldConvBatchNormChain",
     "Fold the QAT conv -> [q/dq] -> div -> [add] -> batch_norm chain into the conv's bias: int32 in place, in a "
     "copy when shared, in the int32 bias QuantizeConvBias would give a conv without one, or, for an unquantized "
     "conv, a float bias",
     kChainOptions,
     [](graph::Graph& graph, const PassContext& context, FoldReport& report) {
       const FoldConvBatchNormChain chain({context.options.risk_threshold, context.options.eps_tolerance,
                                           context.options.output_range,
                                           context.options.per_tensor_weights == PerTensorWeights::kRequantize});
       foldBatchNorms(graph, "FoldConvBatchNormChain", chain, report);
     }},
    {"FoldBatchNormIntoWeightScales",
     "Fold a plain eval batch_norm behind a quantized conv or linear with per-channel int8 weights (no QAT chain), "
     "after its output quantization or reading the layer directly, into its weight scales and a float or int32 "
     "bias, where the folded output's quantization is known (trained after it, calibrated, or estimated on request)",
     kScaleOptions,
     [](graph::Graph& graph, const PassContext& context, FoldReport& report) {
       if (context.options.quantized_batch_norm == QuantizedBatchNorm::kKeep) return;
       const FoldBatchNormIntoWeightScales scales({context.options.quantized_batch_norm,
                                                   &context.options.observed_ranges,
                                                   context.options.per_tensor_weights == PerTensorWeights::kRequantize,
                                                   context.bias_policy == BiasPreparation::kAllConvs});
       foldBatchNorms(graph, "FoldBatchNormIntoWeightScales", scales, report);
     }},
    {"FoldBatchNormIntoWeights",
     "In quantized programs, fold a plain eval batch_norm right after an unquantized conv or linear into its float "
     "weight and bias",
     {},
     [](graph::Graph& graph, const PassContext&, FoldReport& report) {
       if (FoldBatchNormIntoWeights::appliesTo(graph))
         foldBatchNorms(graph, "FoldBatchNormIntoWeights", FoldBatchNormIntoWeights(), report);
     }},
    // After the folds, which give the convs they fold their int32 biases, and
    // only once one folded (or every conv was asked for): a program nothing
    // folds comes out as it went in.
    {"QuantizeConvBias",
     "Give every other conv with dequantized input and weight an int32 bias (zero if missing, float biases "
     "quantized with s_in * s_w) when the program encodes conv biases as int32 and a batch_norm folded (or "
     "bias_preparation=all); the folds give the convs they fold theirs",
     kBiasOptions,
     [](graph::Graph& graph, const PassContext& context, FoldReport& report) {
       const bool asked = context.options.bias_preparation == BiasPreparation::kAllConvs;
       if (context.bias_policy == BiasPreparation::kAllConvs && (asked || !report.folded.empty()))
         QuantizeConvBias().run(graph, report);
     }},
    // Clean-up only after a change: a program nothing folded stays as it came.
    {"EliminateDeadCode",
     "Remove side-effect-free nodes whose results nothing reads",
     {},
     [](graph::Graph& graph, const PassContext&, FoldReport& report) {
       if (graph.mutationCount() > 0) report.removed_nodes = graph.eliminateDeadCode();
     }},
    {"RemoveUnusedConstants",
     "Drop parameters, buffers and constants the fold left unused, with their signature entries and payloads",
     {},
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
  // Options of the whole run rather than of one pass (strict).
  for (const FoldOptionInfo& info : kFoldOptions) {
    bool of_a_pass = false;
    for (const PassInfo& pass : foldPipeline()) {
      for (std::string_view option : pass.options) of_a_pass = of_a_pass || option == info.python_name;
    }
    if (of_a_pass) continue;
    text += "  (the whole run): " + std::string(info.help) + " [" + std::string(info.cli_flag) + " / " +
            std::string(info.python_name) + "]\n";
  }
  return text;
}

}  // namespace qatfold::passes
