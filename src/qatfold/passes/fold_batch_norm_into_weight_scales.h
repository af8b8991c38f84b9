// FoldBatchNormIntoWeightScales: folds a plain eval-mode batch_norm that
// follows the output quantization of a conv or linear with per-channel int8
// weights (torchao builds no QAT chain for conv3d, padding="same" or linear
// + BatchNorm1d) into that layer, keeping the weight's integers
// (numerics/scale_fold.h):
//
//   Before:  out = batch_norm(dq(q(conv(dq(x), dq_c(w_q, s, zp), b))), bn_w, bn_b, mean, var, False, _, eps)
//   After:   out = dq'(q'(conv(dq(x), dq_c(±w_q, s * |f|, zp), (b - mean) * f + bn_b)))
//
// or, where the quantizer annotated the layer and its batch_norm as one
// unit and quantized only after it (Arm, NXP, Core ML: no q/dq between),
//
//   Before:  out = q(batch_norm(conv(dq(x), dq_c(w_q, s, zp), b), ...))     [relu between: kept]
//   After:   out = q(conv(dq(x), dq_c(±w_q, s * |f|, zp), (b - mean) * f + bn_b))
//
// which folds only onto that trained quantize. The batch_norm's parameters
// may be dequantized constants (patterns.h, constantFloats). A bias that was
// int32 (dequantized), or none in a program that encodes biases as int32,
// becomes int32 on the new bias scale s_in * s'_c; else it is float.
//
// The output quantization q'/dq' must cover BN(y), not y. In the order the
// evidence supports:
//   - trained: a quantize QAT trained on BN(y) follows the batch_norm, or
//     its ReLU: the layer's output goes straight to it (conv -> [relu] -> q),
//     which is also what XNNPACK fuses;
//   - calibrated: the range observed on calibration inputs
//     (FoldOptions::observed_ranges), quantized as MinMaxObserver does;
//   - estimated (quantized_batch_norm = estimate): y's range through each
//     channel's factor and shift (numerics/output_range.h).
// Per-tensor weights have one scale for all channels: they are re-quantized
// (numerics/scale_fold.h), only when asked (per_tensor_weights = requantize),
// and the report gives the weight error. Refused with a reason: per-tensor
// weights otherwise, a factor of 0, a weight scale that would not be a normal positive
// float, a negative factor on an asymmetric weight range, a requantization
// scale XNNPACK rejects (>= 256), and an output quantization read by
// anything besides the batch_norm.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "qatfold/graph/graph.h"
#include "qatfold/numerics/output_range.h"
#include "qatfold/passes/fold_options.h"
#include "qatfold/passes/fold_report.h"
#include "qatfold/passes/quantize_conv_bias.h"
#include "qatfold/passes/refusal.h"

namespace qatfold::passes {

class FoldBatchNormIntoWeightScales {
 public:
  struct Config {
    QuantizedBatchNorm mode = QuantizedBatchNorm::kAuto;
    const std::map<std::string, ObservedRange, std::less<>>* observed = nullptr;
    bool requantize_per_tensor = false;  // per-tensor weights: re-quantize (lossy) instead of refusing
    // The program encodes layer biases as int32 (bias_preparation.h): a
    // layer without a bias gets an int32 one, as one with an int32 bias keeps it.
    bool int32_biases = false;
  };
  explicit FoldBatchNormIntoWeightScales(Config config) : config_(config) {}

  struct Match {
    graph::Node* layer = nullptr;
    graph::Node* batch_norm = nullptr;
    graph::Node* output_quantize = nullptr;
    graph::Node* output_dequantize = nullptr;
    graph::Node* weight_dequantize = nullptr;
    graph::Value* weight = nullptr;  // the int8 tensor
    graph::Value* scales = nullptr;
    program::InputKind bias_kind = program::InputKind::kParameter;
    std::vector<std::int8_t> new_weight;     // empty: the weight stays
    std::vector<float> new_scales;           // per channel (per tensor: the one scale, repeated)
    std::optional<double> new_tensor_scale;  // per-tensor weights, re-quantized with zero point 0
    std::vector<float> new_bias;
    // An int32 bias on s_in * s'_c (the layer had one, or the program
    // encodes biases so): the new tensor and dequantize the layer reads.
    std::optional<QuantizeConvBias::Match> int32_bias;
    // Trained: the layer's output goes to the quantize after the batch_norm
    // (or its ReLU); else the pair after the layer takes `report.requantized->after`.
    bool to_trained_quantize = false;
    FoldedConv report;
  };
  using MatchResult = std::variant<Match, Refusal>;

  MatchResult match(graph::Node& batch_norm) const;
  void rewrite(graph::Graph& graph, const Match& match) const;

 private:
  Config config_;
};

}  // namespace qatfold::passes
