// The tail every QAT Conv+BatchNorm simulation chain ends in, whatever sits
// before it (a quantize/dequantize pair, or the conv itself):
//
//     z   = div(y, reshape(div(bn_w, sqrt(add(running_var, eps)))))
//     z   = add(z, reshape(orig_bias))                  -- only if the conv had a bias
//     out = batch_norm(z, bn_w, bn_b, running_mean, running_var, False, _, eps)
//           (or _native_batch_norm_legit_no_training(...)[0])
//
// In eval mode the div and the BN scale cancel, so out = y + C with
//   C_c = (orig_bias_c - mean_c) * bn_w_c / sqrt(var_c + eps) + bn_b_c.
// Matching (structure) and the shift (data) are separate steps, so a fold
// pass can check what precedes the tail before it reads any tensor.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "qatfold/graph/graph.h"
#include "qatfold/numerics/bias_fold.h"
#include "qatfold/passes/refusal.h"

namespace qatfold::passes {

// An eval-mode batch_norm (aten.batch_norm with training=False, or
// _native_batch_norm_legit_no_training with its statistics outputs unused).
struct EvalBatchNorm {
  graph::Node* node = nullptr;
  graph::Value* input = nullptr;
  graph::Value* weight = nullptr;
  graph::Value* bias = nullptr;
  graph::Value* mean = nullptr;
  graph::Value* var = nullptr;
  double eps = 0;
};
// Refusals are plain (not a QAT chain); a pass that is about plain
// batch_norms sets their stage.
std::variant<EvalBatchNorm, Refusal> matchEvalBatchNorm(graph::Node& batch_norm);

// Its parameters, float32, one per channel.
struct BatchNormValues {
  std::vector<float> weight, bias, mean, var;
  float eps = 0;
  numerics::BatchNormParameters parameters() const { return {weight, bias, mean, var, eps}; }
};
// Reads them, or says why not: not constant, not float32, not `channels`
// long, or running_var + eps (with the smaller of eps and `other_eps`) not
// a positive finite number.
std::variant<BatchNormValues, Refusal> readBatchNormValues(const EvalBatchNorm& batch_norm, std::int64_t channels,
                                                           double other_eps);

struct BatchNormTail {
  graph::Node* batch_norm = nullptr;
  graph::Node* add_orig_bias = nullptr;      // null when the conv had no bias
  graph::Node* reshape_orig_bias = nullptr;  // null when the conv had no bias
  graph::Node* div = nullptr;
  graph::Node* reshape_scale = nullptr;
  graph::Node* scale = nullptr;  // div(bn_w, sqrt)
  graph::Node* sqrt = nullptr;
  graph::Node* add_eps = nullptr;   // add(running_var, eps)
  graph::Value* divided = nullptr;  // what the tail divides: the conv output, or its dequantize
  graph::Value* bn_weight = nullptr;
  graph::Value* bn_bias = nullptr;
  graph::Value* bn_mean = nullptr;
  graph::Value* bn_var = nullptr;
  // What the scale chain divides by: bn_weight and bn_var themselves, or
  // other tensors (the float parameters of a BN that reads dequantized copies).
  graph::Value* divisor_weight = nullptr;
  graph::Value* divisor_var = nullptr;
  double eps = 0;        // batch_norm's
  double chain_eps = 0;  // added to running_var in the scale chain

  bool ownDivisor() const { return divisor_weight == bn_weight && divisor_var == bn_var; }
  // The value the tail's users read (the batch_norm's output).
  graph::Value* result() const { return batch_norm->output(0); }
  // The data-path nodes to erase, users first (batch_norm, add, div); the
  // scale and orig_bias computations go with dead-code elimination.
  std::vector<graph::Node*> nodes() const;
  // A use of a tail value from outside the tail, described; nullopt if none.
  std::optional<std::string> outsideUse() const;
};

// Matches the tail ending in `batch_norm`, from structure alone.
std::variant<BatchNormTail, Refusal> matchBatchNormTail(graph::Node& batch_norm);

// What the tail computes from y, per channel: out = y * r + C.
struct TailNumbers {
  std::vector<float> shift;                  // C
  std::optional<std::vector<float>> factor;  // r, only when the div and the BN scale do not cancel
  // r comes from a divisor built from other values than the BN's own (else
  // from the two eps alone).
  bool factor_from_parameters = false;
};

// The tail's numbers, for a tail after a value of `rank` dims with
// `channels` channels, or why they cannot be computed (non-constant or
// non-finite parameters, a broadcast not along the channel dimension, ...).
// The div and the BN scale cancel when the divisor is built from the BN's
// own parameters and eps. Else r is what is left: with a different eps,
// r_c = sqrt(var_c + eps_chain) / sqrt(var_c + eps_bn); with other tensors
// (the BN reads dequantized copies of its weight and running_var, the
// divisor the float ones), r_c = (w_c / sqrt(var_c + eps)) / (w_d,c /
// sqrt(var_d,c + eps_chain)). Either must be a positive finite number.
std::variant<TailNumbers, Refusal> batchNormNumbers(const BatchNormTail& tail, std::int64_t channels, std::size_t rank);

}  // namespace qatfold::passes
