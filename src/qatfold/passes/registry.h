// The passes qatfold runs, declared in one table: name, summary, options.
#pragma once

#include <string_view>

namespace qatfold::passes {

struct PassInfo {
  std::string_view name;
  std::string_view summary;
  std::string_view options;  // the CLI options that steer it
};

inline constexpr PassInfo kFoldPipeline[] = {
    {"QuantizeConvBias",
     "Give every conv with dequantized input and weight an int32 bias (zero if missing, float biases quantized "
     "with s_in * s_w), when the program already encodes conv biases as int32 (else only folded convs get one)",
     "--bias-prep"},
    {"FoldQatConvBatchNorm",
     "Fold the QAT conv -> q/dq -> div -> [add] -> batch_norm chain into the conv's int32 bias (giving a conv "
     "without one the bias QuantizeConvBias would)",
     "--risk-threshold, --eps-tolerance"},
    {"FoldFloatConvBatchNorm",
     "Fold the QAT conv -> div -> [add] -> batch_norm chain of an unquantized conv (no q/dq) into a float conv bias",
     ""},
    {"FoldBatchNormIntoWeights",
     "In quantized programs, fold a plain eval batch_norm right after an unquantized conv or linear into its float "
     "weight and bias",
     ""},
    {"EliminateDeadCode", "Remove side-effect-free nodes whose results nothing reads", ""},
    {"RemoveUnusedConstants",
     "Drop parameters, buffers and constants the fold left unused, with their signature entries and payloads", ""},
};

}  // namespace qatfold::passes
