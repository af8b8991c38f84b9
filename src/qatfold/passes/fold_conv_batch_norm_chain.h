// FoldConvBatchNormChain: folds the QAT Conv+BatchNorm simulation chain into
// the conv's bias.
//
//   Before:
//     y    = conv(dq(x), dq(w), dq(b_q, s_b, zp, qmin, qmax, int32))
//     y_dq = dequantize(quantize(y, s_y, zp_y))        -- absent for an unquantized conv
//     z    = div(y_dq, reshape(div(bn_w, sqrt(add(running_var, eps)))))
//     z    = add(z, reshape(orig_bias))                 -- only if the conv had a bias
//     out  = batch_norm(z, bn_w, bn_b, running_mean, running_var, False, _, eps)
//            (or _native_batch_norm_legit_no_training(...)[0])
//   After:
//     y    = conv(dq(x), dq(w), dq(b_new, s_b, zp, qmin, qmax, int32))
//     out  = y_dq
//
// In eval mode the div and the BN scale cancel exactly, leaving y + C with
//   C_c = (orig_bias_c - mean_c) * bn_w_c / sqrt(var_c + eps) + bn_b_c
//   b_new_c = clamp(round_half_even(((b_c - zp) * s_b + C_c) / s_b) + zp, qmin, qmax)
// (see numerics/bias_fold.h for the exact float32 order).
//
// The Match says how the bias takes C:
//   - kInt32InPlace: the conv's int32 bias tensor, which only it reads;
//   - kInt32Copy: a shared int32 bias is copied, with its dequantize, so
//     only this conv sees the new values;
//   - kInt32Prepared: a conv with quantized input and weight but no int32
//     bias gets the one QuantizeConvBias would make, already shifted (bias
//     preparation then touches folded convs only, see bias_preparation.h);
//   - kFloat: an unquantized conv (Cadence's quantizer leaves transposed
//     convs so, with no q/dq after them) takes b0 + C as a float bias; its
//     weight w' (torchao's w * bn_w / sqrt(var + eps)) stays, since the
//     chain's div undoes that scale before the BN applies it again.
//
// With output_range = widen, the quantize/dequantize pair after the conv
// takes a range stretched to cover y + C (numerics/output_range.h), and the
// report gives the old and new range.
//
// If the scale chain's eps differs from the BatchNorm's, or the BatchNorm
// reads dequantized copies of the parameters the divisor is built from
// (Arm's quantizer fake-quantizes all four), out = y * r + C
// (see batch_norm_tail.h). Per-channel weights take r into their scales
// (s_w' = s_w * r, s_b' = s_b * r); per-tensor weights fold only when r is
// within the eps tolerance of 1, and the report says which; float convs are
// refused.
//
// The fold is refused, with a code (refusal.h), when it would change what
// anything else computes: a chain value used outside the chain, a divisor
// not built from constants, non-constant BN parameters, training mode, or
// a non-positive running_var + eps.
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "qatfold/graph/graph.h"
#include "qatfold/passes/batch_norm_tail.h"
#include "qatfold/passes/fold_options.h"
#include "qatfold/passes/fold_report.h"
#include "qatfold/passes/patterns.h"
#include "qatfold/passes/quantize_conv_bias.h"
#include "qatfold/passes/refusal.h"

namespace qatfold::passes {

class FoldConvBatchNormChain {
 public:
  struct Options {
    // Flag a conv whose largest |C_c| exceeds this fraction of the range its
    // output quantization represents.
    double risk_threshold = kDefaultRiskThreshold;
    // With per-tensor weights, an eps mismatch folds only when
    // max_c |r_c - 1| is at most this.
    double eps_tolerance = kDefaultEpsTolerance;
    // What the conv's output quantization becomes (see fold_options.h).
    OutputRange output_range = OutputRange::kKeep;
    // Per-tensor weights whose factor r is beyond the eps tolerance are
    // re-quantized with it (per_tensor_weights = requantize) instead of refused.
    bool requantize_per_tensor = false;
  };

  enum class BiasUpdate { kInt32InPlace, kInt32Copy, kInt32Prepared, kFloat };

  // New values for a float32 constant read by `reader` as its operand `operand`.
  struct ConstantUpdate {
    graph::Node* reader = nullptr;
    std::string operand;
    graph::Value* constant = nullptr;
    std::vector<float> values;
  };

  struct RequantizedWeight {
    graph::Node* dequantize = nullptr;
    graph::Value* weight = nullptr;  // the int8 tensor it read
    std::vector<std::int8_t> values;
    double scale = 0;
    double bias_scale = 0;
    FoldedConv::WeightError error;
  };

  // Everything the rewrite needs, computed before the graph is touched: the
  // rewrite reads nothing else and makes no decision of its own.
  struct Match {
    graph::Node* conv = nullptr;
    graph::Value* result = nullptr;       // what the chain's users read
    graph::Value* replacement = nullptr;  // what they read instead: y_dq, or y
    std::vector<graph::Node*> chain;      // erased, in this order
    BiasUpdate bias_update = BiasUpdate::kInt32InPlace;
    // kInt32InPlace / kInt32Copy: the int32 bias constant and its dequantize.
    graph::Value* int32_bias = nullptr;
    graph::Node* bias_dequantize = nullptr;
    std::vector<std::int32_t> new_int32_bias;
    // kInt32Prepared: the bias preparation, holding the shifted values.
    std::optional<QuantizeConvBias::Match> prepared;
    // kFloat: the new float bias and the kind of input it becomes.
    std::vector<float> new_float_bias;
    program::InputKind float_bias_kind = program::InputKind::kParameter;
    // Eps mismatch on per-channel weights: new weight and bias scales (the
    // bias scales only for kInt32InPlace and kInt32Copy).
    std::optional<ConstantUpdate> weight_scales;
    std::optional<ConstantUpdate> bias_scales;  // read by bias_dequantize (or by its copy)
    // per_tensor_weights = requantize, r beyond the eps tolerance on
    // per-tensor weights: the weight re-quantized with r (zero point 0),
    // the bias on s_in * s' (set by the rewrite, or made so when prepared).
    std::optional<RequantizedWeight> requantized_weight;
    // OutputRange::kWiden: the conv output's quantize and dequantize take
    // `report.widened_output` as their scale and zero point.
    graph::Node* output_quantize = nullptr;
    graph::Node* output_dequantize = nullptr;
    FoldedConv report;
  };
  using MatchResult = std::variant<Match, Refusal>;

  explicit FoldConvBatchNormChain(Options options) : options_(options) {}

  MatchResult match(graph::Node& batch_norm) const;
  void rewrite(graph::Graph& graph, const Match& match) const;

 private:
  // The int32 bias (existing or prepared) with C added; or why not.
  std::optional<Refusal> matchInt32Bias(Match& m, const BatchNormTail& tail, graph::Node& conv,
                                        const std::optional<quant::AffineQuantization>& output_q) const;
  // Per-tensor weights re-quantized with r, the bias with them; or why not.
  std::optional<Refusal> requantizeWeight(Match& m, graph::Node& conv, std::span<const float> factor,
                                          std::span<const float> shift, bool per_channel_bias,
                                          std::int64_t channel_axis, std::int64_t channels) const;
  // b0 + C as a float bias; or why not.
  std::optional<Refusal> matchFloatBias(Match& m, const BatchNormTail& tail, graph::Node& conv) const;

  Options options_;
};

}  // namespace qatfold::passes
