// The arithmetic of folding an eval-mode BatchNorm into the float weight and
// bias of the conv (or linear) before it, as torch.nn.utils.fuse_conv_bn_eval
// does it, in float32:
//
//   s_c  = bn_w_c * (1 / sqrt(var_c + eps))
//   w'_c = w_c * s_c                       (every weight of output channel c)
//   b'_c = (b_c - mean_c) * s_c + bn_b_c   (b = 0 when the conv has no bias)
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "qatfold/numerics/bias_fold.h"

namespace qatfold::numerics {

struct FoldedWeights {
  std::vector<float> weight;
  std::vector<float> bias;
};

// `weight` is row-major with the output channel as its first dimension
// (conv and linear weights), `channels` rows of equal length.
FoldedWeights foldBatchNormIntoWeights(std::span<const float> weight, std::int64_t channels,
                                       std::optional<std::span<const float>> bias, const BatchNormParameters& bn);

}  // namespace qatfold::numerics
