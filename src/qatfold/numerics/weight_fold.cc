#include "qatfold/numerics/weight_fold.h"

#include <cmath>

namespace qatfold::numerics {

FoldedWeights foldBatchNormIntoWeights(std::span<const float> weight, std::int64_t channels,
                                       std::optional<std::span<const float>> bias, const BatchNormParameters& bn) {
  FoldedWeights out;
  out.weight.assign(weight.begin(), weight.end());
  out.bias.resize(static_cast<std::size_t>(channels));
  const std::size_t row = weight.size() / static_cast<std::size_t>(channels);
  for (std::size_t c = 0; c < out.bias.size(); ++c) {
    const float rsqrt = 1.0f / std::sqrt(bn.running_var[c] + bn.eps);
    const float scale = bn.weight[c] * rsqrt;
    for (std::size_t i = c * row; i < (c + 1) * row; ++i) out.weight[i] = weight[i] * scale;
    const float b = bias ? (*bias)[c] : 0.0f;
    out.bias[c] = (b - bn.running_mean[c]) * rsqrt * bn.weight[c] + bn.bias[c];
  }
  return out;
}

}  // namespace qatfold::numerics
