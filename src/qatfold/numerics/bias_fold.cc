#include "qatfold/numerics/bias_fold.h"

#include <algorithm>
#include <cmath>

namespace qatfold::numerics {
namespace {

// Element `c` of a per-tensor (size 1) or per-channel parameter.
template <class T>
T channelValue(std::span<const T> values, std::size_t c) {
  return values.size() == 1 ? values[0] : values[c];
}

// Clamps a rounded float to [qmin, qmax] exactly (the comparison is done in
// double, so 2^31 as a float is seen as above INT32_MAX, not cast into it).
std::int32_t clampToInt32(float rounded, std::int64_t quant_min, std::int64_t quant_max, std::size_t& clamped) {
  double value = static_cast<double>(rounded);
  if (std::isnan(value)) {
    ++clamped;
    return static_cast<std::int32_t>(std::clamp<std::int64_t>(0, quant_min, quant_max));
  }
  if (value < static_cast<double>(quant_min)) {
    ++clamped;
    return static_cast<std::int32_t>(quant_min);
  }
  if (value > static_cast<double>(quant_max)) {
    ++clamped;
    return static_cast<std::int32_t>(quant_max);
  }
  return static_cast<std::int32_t>(value);
}

}  // namespace

std::vector<float> batchNormShift(const BatchNormParameters& bn, std::optional<std::span<const float>> orig_bias) {
  const std::size_t channels = bn.weight.size();
  std::vector<float> shift(channels);
  for (std::size_t c = 0; c < channels; ++c) {
    const float std_dev = std::sqrt(bn.running_var[c] + bn.eps);
    const float centered = orig_bias ? (*orig_bias)[c] - bn.running_mean[c] : -bn.running_mean[c];
    const float scaled = centered * bn.weight[c];
    shift[c] = scaled / std_dev + bn.bias[c];
  }
  return shift;
}

QuantizedBias addShiftToQuantizedBias(std::span<const std::int32_t> bias, std::span<const float> shift,
                                      const BiasQuantization& quantization) {
  QuantizedBias result;
  result.values.resize(bias.size());
  for (std::size_t c = 0; c < bias.size(); ++c) {
    const float scale = channelValue(quantization.scale, c);
    const float zero_point = static_cast<float>(channelValue(quantization.zero_point, c));
    const float dequantized = (static_cast<float>(bias[c]) - zero_point) * scale;
    const float shifted = dequantized + shift[c];
    const float rounded = std::nearbyint(shifted / scale) + zero_point;
    result.values[c] = clampToInt32(rounded, quantization.quant_min, quantization.quant_max, result.clamped);
  }
  return result;
}

double biasScale(double input_scale, double weight_scale) { return input_scale * weight_scale; }

std::vector<float> biasScales(double input_scale, std::span<const float> weight_scales) {
  const auto s_in = static_cast<float>(input_scale);
  std::vector<float> scales;
  scales.reserve(weight_scales.size());
  for (float s : weight_scales) scales.push_back(s_in * s);
  return scales;
}

QuantizedBias quantizeBiasPerTensor(std::span<const float> values, double scale, std::int64_t zero_point,
                                    std::int64_t quant_min, std::int64_t quant_max) {
  QuantizedBias result;
  result.values.resize(values.size());
  const float inverse = static_cast<float>(1.0 / scale);
  const float zp = static_cast<float>(zero_point);
  for (std::size_t i = 0; i < values.size(); ++i) {
    const float rounded = std::nearbyint(values[i] * inverse) + zp;
    result.values[i] = clampToInt32(rounded, quant_min, quant_max, result.clamped);
  }
  return result;
}

QuantizedBias quantizeBiasPerChannel(std::span<const float> values, std::span<const float> scales,
                                     std::span<const std::int64_t> zero_points, std::int64_t quant_min,
                                     std::int64_t quant_max) {
  QuantizedBias result;
  result.values.resize(values.size());
  for (std::size_t c = 0; c < values.size(); ++c) {
    const float inverse = 1.0f / channelValue(scales, c);
    const float zp = static_cast<float>(channelValue(zero_points, c));
    const float rounded = std::nearbyint(values[c] * inverse) + zp;
    result.values[c] = clampToInt32(rounded, quant_min, quant_max, result.clamped);
  }
  return result;
}

std::vector<float> epsMismatchFactor(std::span<const float> running_var, float eps_chain, float eps_bn) {
  std::vector<float> factor(running_var.size());
  for (std::size_t c = 0; c < factor.size(); ++c) {
    factor[c] = std::sqrt(running_var[c] + eps_chain) / std::sqrt(running_var[c] + eps_bn);
  }
  return factor;
}

std::vector<float> divisorFactor(const BatchNormParameters& bn, std::span<const float> divisor_weight,
                                 std::span<const float> divisor_var, float eps_chain) {
  std::vector<float> factor(bn.weight.size());
  for (std::size_t c = 0; c < factor.size(); ++c) {
    const float applied = bn.weight[c] / std::sqrt(bn.running_var[c] + bn.eps);
    const float divided = divisor_weight[c] / std::sqrt(divisor_var[c] + eps_chain);
    factor[c] = applied / divided;
  }
  return factor;
}

std::vector<float> scaleByFactor(std::span<const float> scales, std::span<const float> factor) {
  std::vector<float> out(scales.size());
  for (std::size_t c = 0; c < out.size(); ++c) out[c] = scales[c] * factor[c];
  return out;
}

std::vector<float> addShiftToFloatBias(std::optional<std::span<const float>> bias, std::span<const float> shift) {
  std::vector<float> out(shift.begin(), shift.end());
  if (bias) {
    for (std::size_t c = 0; c < out.size(); ++c) out[c] = (*bias)[c] + shift[c];
  }
  return out;
}

}  // namespace qatfold::numerics
