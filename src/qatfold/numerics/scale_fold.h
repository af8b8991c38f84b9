// The arithmetic of folding an eval-mode BatchNorm into a layer whose weight
// is quantized per output channel, keeping the weight's integers:
//
//   f_c  = bn_w_c * (1 / sqrt(var_c + eps))          (float32, as weight_fold.h)
//   s'_c = s_c * |f_c|                               (the channel's weight scale)
//   q'   = -q for every weight of a channel with f_c < 0
//   b'_c = (b_c - mean_c) * f_c + bn_b_c             (b = 0 when absent)
//
// dequantize(q', s') = f_c * dequantize(q, s) exactly when the zero point is
// 0 and the integer range symmetric (-quant_min == quant_max), which a
// negated channel needs; a channel with f_c >= 0 needs neither.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "qatfold/numerics/bias_fold.h"

namespace qatfold::numerics {

// A weight quantized per channel along `axis` of `sizes` (row-major).
struct PerChannelWeight {
  std::span<const std::int8_t> values;
  std::span<const std::int64_t> sizes;
  std::int64_t axis = 0;
  std::span<const float> scales;
  std::span<const std::int64_t> zero_points;
  std::int64_t quant_min = -127;
  std::int64_t quant_max = 127;
};

// What both folds compute per channel first.
struct ChannelFactors {
  std::vector<float> factor;  // f
  std::vector<float> bias;    // b'
};

struct FoldedScales : ChannelFactors {
  std::vector<float> scales;  // s'
  // The weight with its negated channels' integers negated; empty when no
  // channel is negated (the weight stays as it is).
  std::vector<std::int8_t> values;
  std::vector<std::int64_t> negated;  // those channels
};

// Why a channel cannot take its factor.
struct ScaleFoldProblem {
  enum class Kind {
    kZeroFactor,      // f_c == 0: the channel would have no scale
    kScaleNotNormal,  // s'_c is not a normal positive float32
    kCannotNegate,    // f_c < 0 but the zero point or the integer range is not symmetric
    kNonFiniteBias,   // b'_c is not finite
  };
  Kind kind;
  std::int64_t channel = 0;
  double value = 0;  // f_c, s'_c or b'_c
};

// The channels are sizes[axis] long; the scales, zero points, `bias` and the
// BatchNorm parameters have one value per channel (checked by the caller).
std::variant<FoldedScales, ScaleFoldProblem> foldBatchNormIntoScales(const PerChannelWeight& weight,
                                                                     std::optional<std::span<const float>> bias,
                                                                     const BatchNormParameters& bn);

// Per-tensor weights have one scale for every channel, so f_c cannot go
// into it: the weight is re-quantized. w'_c = f_c * (q - zp) * s per
// channel, then one symmetric scale s' = max |w'| / min(-quant_min,
// quant_max) (zero point 0) and q' = round_half_even(w' / s'), clamped; the
// bias as above. Lossy, so only on request, and the error is reported.
struct PerTensorWeight {
  std::span<const std::int8_t> values;
  std::span<const std::int64_t> sizes;
  std::int64_t axis = 0;  // the output channels
  double scale = 1;
  std::int64_t zero_point = 0;
  std::int64_t quant_min = -127;
  std::int64_t quant_max = 127;
};

struct RequantizedWeights : ChannelFactors {
  std::vector<std::int8_t> values;
  double scale = 1;
  // max_i |w'_i - q'_i * s'| and the same over max |w'|: what re-quantizing cost.
  double max_abs_error = 0;
  double relative_error = 0;
  // The worst channel's error over its own max |w'_c|: one scale for every
  // channel leaves a channel with a small |f_c| few of the new steps.
  double worst_channel_error = 0;
  std::size_t worst_channel = 0;
};

// The re-quantization alone, by any per-channel factor (a chain's r): w'_c =
// factor_c * w_c, one new scale; `bias` of the result left empty.
std::variant<RequantizedWeights, ScaleFoldProblem> requantizeWithFactor(const PerTensorWeight& weight,
                                                                        std::span<const float> factor);

std::variant<RequantizedWeights, ScaleFoldProblem> requantizeWithBatchNorm(const PerTensorWeight& weight,
                                                                           std::optional<std::span<const float>> bias,
                                                                           const BatchNormParameters& bn);

}  // namespace qatfold::numerics
