// FoldQatConvBatchNorm: folds the QAT Conv+BatchNorm simulation chain into the
// conv's int32 bias.
//
//   Before:
//     y    = conv(dq(x), dq(w), dq(b_q, s_b, zp, qmin, qmax, int32))
//     y_dq = dequantize(quantize(y, s_y, zp_y))
//     z    = div(y_dq, reshape(div(bn_w, sqrt(add(running_var, eps)))))
//     z    = add(z, reshape(orig_bias))                 -- only if the conv had a bias
//     out  = batch_norm(z, bn_w, bn_b, running_mean, running_var, False, _, eps)
//            (or _native_batch_norm_legit_no_training(...)[0])
//   After:
//     y    = conv(dq(x), dq(w), dq(b_new, s_b, zp, qmin, qmax, int32))
//     out  = y_dq = dequantize(quantize(y, s_y, zp_y))
//
// If the scale chain's eps differs from the BatchNorm's, out = y * r + C
// (see batch_norm_tail.h). Per-channel weights take r into their scales
// (s_w' = s_w * r, s_b' = s_b * r); per-tensor weights fold only when r is
// within Options::eps_tolerance of 1, and the report says which.
//
// In eval mode the div and the BN scale cancel exactly, leaving y + C with
//   C_c = (orig_bias_c - mean_c) * bn_w_c / sqrt(var_c + eps) + bn_b_c
//   b_new_c = clamp(round_half_even(((b_c - zp) * s_b + C_c) / s_b) + zp, qmin, qmax)
// (see numerics/bias_fold.h for the exact float32 order).
//
// The fold is refused, with a reason, when it would change what anything
// else computes: a chain value used outside the chain, a scale chain not
// built from this BN's own weight/running_var/eps, non-constant BN
// parameters, training mode, or a non-positive running_var + eps. A bias
// shared with other users is copied so only this conv sees the new values.
//
// A conv without an int32 bias (none, or a float one) whose input and weight
// are dequantized gets one here, as QuantizeConvBias would make it, already
// holding the folded values: bias preparation then touches folded convs only
// (see bias_preparation.h).
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "qatfold/graph/graph.h"
#include "qatfold/passes/batch_norm_tail.h"
#include "qatfold/passes/fold_report.h"
#include "qatfold/passes/fold_options.h"
#include "qatfold/passes/patterns.h"
#include "qatfold/passes/quantize_conv_bias.h"

namespace qatfold::passes {

class FoldQatConvBatchNorm {
 public:
  struct Options {
    // Flag a conv whose largest |C_c| exceeds this fraction of the range its
    // output quantization represents.
    double risk_threshold = kDefaultRiskThreshold;
    // When the scale chain's eps differs from the BatchNorm's, the chain
    // computes y * r + C. Per-channel weights absorb r exactly in their
    // scales; per-tensor ones cannot, so the fold ignores r only when
    // max_c |r_c - 1| is at most this.
    double eps_tolerance = kDefaultEpsTolerance;
  };

  // Everything the rewrite needs, computed before the graph is touched.
  struct Match {
    graph::Node* batch_norm = nullptr;
    graph::Value* result = nullptr;       // what the chain's users read
    graph::Value* conv_output_dq = nullptr;
    graph::Node* conv = nullptr;
    AffineQuantization bias;              // the dequantize of the conv bias (unless prepared_bias)
    bool copy_bias = false;               // bias shared: give this conv its own
    // The conv had no int32 bias: the one bias preparation gives it, holding
    // the folded values (so new_bias and bias are unused).
    std::optional<QuantizeConvBias::Match> prepared_bias;
    std::vector<graph::Node*> chain;      // erased, in this order
    program::TensorMeta bias_meta;
    std::vector<std::int32_t> new_bias;
    // Eps mismatch on per-channel weights: the new weight and bias scales.
    std::optional<std::vector<float>> new_weight_scales;
    std::optional<std::vector<float>> new_bias_scales;
    graph::Node* weight_dequantize = nullptr;
    FoldedChain report;
  };
  // A match, or why not; `qat_chain` tells whether the BN looked like a chain.
  // Why not, and whether the batch_norm looked like a QAT chain.
  using NoMatch = TailMismatch;
  using MatchResult = std::variant<Match, NoMatch>;

  explicit FoldQatConvBatchNorm(Options options) : options_(options) {}

  MatchResult match(graph::Node& batch_norm) const;
  void rewrite(graph::Graph& graph, const Match& match) const;
  // Folds every matching chain; returns whether the graph changed.
  bool run(graph::Graph& graph, FoldReport& report) const;

 private:
  Options options_;
};

}  // namespace qatfold::passes
