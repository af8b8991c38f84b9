// FoldFloatConvBatchNorm: folds a QAT Conv+BatchNorm simulation chain that
// has no quantize/dequantize after the conv (the conv was not quantized, as
// with Cadence's quantizer on transposed convs) into a float conv bias.
//
//   Before:
//     y    = conv(x, w', b0)        -- b0: none, zeros_like(...) or a float constant
//     z    = div(y, reshape(div(bn_w, sqrt(add(running_var, eps)))))
//     z    = add(z, reshape(orig_bias))                 -- only if the conv had a bias
//     out  = batch_norm(z, bn_w, bn_b, running_mean, running_var, False, _, eps)
//   After:
//     out  = conv(x, w', b0 + C)
//
// w' (torchao's w * bn_w / sqrt(var + eps)) stays as it is: the chain's div
// undoes that scale before the BN applies it again, so in eval mode
// out = y + C with C as in batch_norm_tail.h. Refusals are the tail's, plus a
// conv output read outside the chain or a bias that is not a float constant.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "qatfold/graph/graph.h"
#include "qatfold/passes/batch_norm_tail.h"
#include "qatfold/passes/fold_report.h"

namespace qatfold::passes {

class FoldFloatConvBatchNorm {
 public:
  struct Match {
    graph::Node* conv = nullptr;
    graph::Value* result = nullptr;   // what the chain's users read
    std::vector<graph::Node*> chain;  // erased, in this order
    std::vector<float> new_bias;
    program::InputKind bias_kind = program::InputKind::kParameter;
    FoldedChain report;
  };
  // Why not, and whether the batch_norm looked like a QAT chain.
  using NoMatch = TailMismatch;
  using MatchResult = std::variant<Match, NoMatch>;

  MatchResult match(graph::Node& batch_norm) const;
  void rewrite(graph::Graph& graph, const Match& match) const;
  // Folds every matching chain; returns whether the graph changed. Chains
  // this pass does not fold are left to the report of the passes before it.
  bool run(graph::Graph& graph, FoldReport& report) const;
};

}  // namespace qatfold::passes
