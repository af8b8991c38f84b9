#include "qatfold/numerics/scale_fold.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace qatfold::numerics {
namespace {

// Fills `out` with f_c and b'_c of the sizes[axis] channels (weight_fold.h's
// arithmetic); the first channel whose f_c is 0 or b'_c not finite, if any.
std::optional<ScaleFoldProblem> channelFactors(std::span<const std::int64_t> sizes, std::int64_t axis,
                                               std::optional<std::span<const float>> bias,
                                               const BatchNormParameters& bn, ChannelFactors& out) {
  using Kind = ScaleFoldProblem::Kind;
  const auto channels = static_cast<std::size_t>(sizes[static_cast<std::size_t>(axis)]);
  out.factor.resize(channels);
  out.bias.resize(channels);
  for (std::size_t c = 0; c < channels; ++c) {
    const float rsqrt = 1.0f / std::sqrt(bn.running_var[c] + bn.eps);
    out.factor[c] = bn.weight[c] * rsqrt;
    const auto channel = static_cast<std::int64_t>(c);
    if (out.factor[c] == 0.0f) return ScaleFoldProblem{Kind::kZeroFactor, channel, 0.0};
    const float b = bias ? (*bias)[c] : 0.0f;
    out.bias[c] = (b - bn.running_mean[c]) * rsqrt * bn.weight[c] + bn.bias[c];
    if (!std::isfinite(out.bias[c])) return ScaleFoldProblem{Kind::kNonFiniteBias, channel, out.bias[c]};
  }
  return std::nullopt;
}

// Elements per index of `axis` (the product of the dimensions after it).
std::size_t innerSize(std::span<const std::int64_t> sizes, std::int64_t axis) {
  std::size_t inner = 1;
  for (std::size_t d = static_cast<std::size_t>(axis) + 1; d < sizes.size(); ++d)
    inner *= static_cast<std::size_t>(sizes[d]);
  return inner;
}

}  // namespace

std::variant<FoldedScales, ScaleFoldProblem> foldBatchNormIntoScales(const PerChannelWeight& weight,
                                                                     std::optional<std::span<const float>> bias,
                                                                     const BatchNormParameters& bn) {
  using Kind = ScaleFoldProblem::Kind;
  FoldedScales out;
  if (auto problem = channelFactors(weight.sizes, weight.axis, bias, bn, out)) return *problem;
  const std::size_t channels = out.factor.size();
  out.scales.resize(channels);
  const bool symmetric = -weight.quant_min == weight.quant_max;
  for (std::size_t c = 0; c < channels; ++c) {
    const float f = out.factor[c];
    const auto channel = static_cast<std::int64_t>(c);
    out.scales[c] = weight.scales[c] * std::fabs(f);
    if (!std::isfinite(out.scales[c]) || out.scales[c] < std::numeric_limits<float>::min()) {
      return ScaleFoldProblem{Kind::kScaleNotNormal, channel, out.scales[c]};
    }
    if (f < 0.0f) {
      if (!symmetric || weight.zero_points[c] != 0) return ScaleFoldProblem{Kind::kCannotNegate, channel, f};
      out.negated.push_back(channel);
    }
  }
  if (!out.negated.empty()) {
    const std::size_t inner = innerSize(weight.sizes, weight.axis);
    out.values.assign(weight.values.begin(), weight.values.end());
    for (std::size_t i = 0; i < out.values.size(); ++i) {
      const std::size_t c = (i / inner) % channels;
      // Symmetric range: -q stays inside it.
      if (out.factor[c] < 0.0f) out.values[i] = static_cast<std::int8_t>(-out.values[i]);
    }
  }
  return out;
}

std::variant<RequantizedWeights, ScaleFoldProblem> requantizeWithFactor(const PerTensorWeight& weight,
                                                                        std::span<const float> factor) {
  using Kind = ScaleFoldProblem::Kind;
  RequantizedWeights out;
  out.factor.assign(factor.begin(), factor.end());
  const std::size_t channels = out.factor.size();
  const std::size_t inner = innerSize(weight.sizes, weight.axis);
  std::vector<float> folded(weight.values.size());
  float largest = 0;
  for (std::size_t i = 0; i < folded.size(); ++i) {
    const float w = static_cast<float>(weight.values[i] - weight.zero_point) * static_cast<float>(weight.scale);
    folded[i] = w * out.factor[(i / inner) % channels];
    largest = std::max(largest, std::fabs(folded[i]));
  }
  const std::int64_t reach = std::min(-weight.quant_min, weight.quant_max);
  const float scale = largest / static_cast<float>(reach);
  if (!std::isfinite(scale) || scale < std::numeric_limits<float>::min()) {
    return ScaleFoldProblem{Kind::kScaleNotNormal, 0, scale};
  }
  out.scale = scale;
  out.values.resize(folded.size());
  std::vector<double> channel_largest(channels, 0.0), channel_error(channels, 0.0);
  for (std::size_t i = 0; i < folded.size(); ++i) {
    const auto q = static_cast<std::int64_t>(std::nearbyint(folded[i] / scale));  // half to even
    out.values[i] = static_cast<std::int8_t>(std::clamp(q, weight.quant_min, weight.quant_max));
    const double error = std::fabs(static_cast<double>(folded[i]) - static_cast<double>(out.values[i]) * scale);
    const std::size_t c = (i / inner) % channels;
    out.max_abs_error = std::max(out.max_abs_error, error);
    channel_error[c] = std::max(channel_error[c], error);
    channel_largest[c] = std::max(channel_largest[c], static_cast<double>(std::fabs(folded[i])));
  }
  out.relative_error = largest > 0 ? out.max_abs_error / largest : 0;
  for (std::size_t c = 0; c < channels; ++c) {
    // A channel of zeros re-quantizes exactly.
    const double relative = channel_largest[c] > 0 ? channel_error[c] / channel_largest[c] : 0;
    if (relative > out.worst_channel_error) {
      out.worst_channel_error = relative;
      out.worst_channel = c;
    }
  }
  return out;
}

std::variant<RequantizedWeights, ScaleFoldProblem> requantizeWithBatchNorm(const PerTensorWeight& weight,
                                                                           std::optional<std::span<const float>> bias,
                                                                           const BatchNormParameters& bn) {
  ChannelFactors factors;
  if (auto problem = channelFactors(weight.sizes, weight.axis, bias, bn, factors)) return *problem;
  auto result = requantizeWithFactor(weight, factors.factor);
  if (auto* requantized = std::get_if<RequantizedWeights>(&result)) requantized->bias = std::move(factors.bias);
  return result;
}

}  // namespace qatfold::numerics
