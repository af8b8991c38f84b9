// FoldBatchNormIntoWeights: folds a plain eval-mode batch_norm that directly
// follows an unquantized conv or linear into that op's float weight and bias
// (torch.nn.utils.fuse_conv_bn_eval's arithmetic, numerics/weight_fold.h).
//
//   Before:  out = batch_norm(conv(x, w, b), bn_w, bn_b, mean, var, False, _, eps)
//   After:   out = conv(x, w', b')
//
// This is what is left when no QAT chain was built and the quantizer left the
// conv in float: ExecuTorch's Cadence quantizer on conv3d and padding="same"
// convs. A conv whose weight is quantized (dequantized in the graph) is
// refused with the reason: its batch_norm sits behind the output quantization,
// where a per-channel scale cannot be folded without re-quantizing.
// Transposed convs (their output channels are not the weight's first
// dimension) are refused too. It runs on quantized programs only (any
// quantize/dequantize op): a float program passes through unchanged.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "qatfold/graph/graph.h"
#include "qatfold/passes/batch_norm_tail.h"
#include "qatfold/passes/fold_report.h"
#include "qatfold/passes/refusal.h"

namespace qatfold::passes {

class FoldBatchNormIntoWeights {
 public:
  struct Match {
    graph::Node* conv = nullptr;
    graph::Node* batch_norm = nullptr;
    program::TensorMeta weight_meta;
    std::vector<float> new_weight;
    std::vector<float> new_bias;
    program::InputKind kind = program::InputKind::kParameter;
    FoldedConv report;
  };
  // A match, or why not and how far the pattern got (MatchStage): refusals
  // after a conv or a dequantize are this pass's own, others are not its pattern.
  using MatchResult = std::variant<Match, Refusal>;

  // Whether the pass runs on `graph`: only quantized programs, where a float
  // conv+BN is what the quantizer left behind.
  static bool appliesTo(const graph::Graph& graph);
  MatchResult match(graph::Node& batch_norm) const;
  void rewrite(graph::Graph& graph, const Match& match) const;

 private:
  std::variant<Match, Refusal> matchOrWhy(graph::Node& batch_norm) const;
};

}  // namespace qatfold::passes
