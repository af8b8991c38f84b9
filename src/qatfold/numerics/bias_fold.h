// The arithmetic of folding BatchNorm into a quantized conv bias.
//
// Pure functions over spans, in IEEE float32 in the same operation order as
// the reference (ExecuTorch's FuseQATConvBN and torch's quantized_decomposed
// ops), so results are bit-identical. This file is compiled, like the rest
// of the project, with -ffp-contract=off: no fused multiply-add may merge
// two roundings into one.
//
//   std_c   = sqrt(var_c + eps)
//   shift_c = (orig_bias_c - mean_c) * weight_c / std_c + bias_c     (orig_bias = 0: -mean_c * ...)
//   b_new_c = clamp(round_half_even(((b_c - zp) * s_b + shift_c) / s_b) + zp, qmin, qmax)
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace qatfold::numerics {

// The BatchNorm parameters of one chain, float32, one entry per channel.
struct BatchNormParameters {
  std::span<const float> weight;
  std::span<const float> bias;
  std::span<const float> running_mean;
  std::span<const float> running_var;
  float eps = 1e-5f;
};

// shift_c = (orig_bias_c - mean_c) * weight_c / sqrt(var_c + eps) + bias_c;
// without `orig_bias`, (-mean_c) * weight_c / ... as the reference computes it.
std::vector<float> batchNormShift(const BatchNormParameters& bn, std::optional<std::span<const float>> orig_bias);

// An int32 bias and how many of its elements had to be clamped into range.
struct QuantizedBias {
  std::vector<std::int32_t> values;
  std::size_t clamped = 0;
};

// Quantization of a bias: a scale and zero point per tensor (size 1) or per
// channel (size C), and the integer range.
struct BiasQuantization {
  std::span<const float> scale;
  std::span<const std::int64_t> zero_point;
  std::int64_t quant_min = INT32_MIN;
  std::int64_t quant_max = INT32_MAX;
};

// Adds `shift` (float) to an int32 bias dequantized by `quantization`:
// b_new = clamp(round_half_even(((b - zp) * s + shift) / s) + zp, qmin, qmax).
QuantizedBias addShiftToQuantizedBias(std::span<const std::int32_t> bias, std::span<const float> shift,
                                      const BiasQuantization& quantization);

// The scale of a conv's int32 bias, s_b = s_in * s_w: per tensor one double
// product (the reference's Python floats), per channel float32(s_in) * s_w[c]
// (torch's derived bias qspec, a float32 tensor product). The one place the
// rule is written: QuantizeConvBias, and the folds that re-quantize a weight
// and re-derive its bias, use it.
double biasScale(double input_scale, double weight_scale);
std::vector<float> biasScales(double input_scale, std::span<const float> weight_scales);

// quantize_per_tensor / quantize_per_channel of a float bias to int32:
// round_half_even(x * (1 / s)) + zp, clamped. Per tensor, `1 / s` is taken in
// double (the op's Python float) and then applied in float32; per channel it
// is a float32 tensor division, as torch computes them.
QuantizedBias quantizeBiasPerTensor(std::span<const float> values, double scale, std::int64_t zero_point,
                                    std::int64_t quant_min, std::int64_t quant_max);
QuantizedBias quantizeBiasPerChannel(std::span<const float> values, std::span<const float> scales,
                                     std::span<const std::int64_t> zero_points, std::int64_t quant_min,
                                     std::int64_t quant_max);

// The factor left when a chain divides by bn_w / sqrt(var + eps_chain) and
// the BatchNorm multiplies by bn_w / sqrt(var + eps_bn):
// r_c = sqrt(var_c + eps_chain) / sqrt(var_c + eps_bn), in float32.
std::vector<float> epsMismatchFactor(std::span<const float> running_var, float eps_chain, float eps_bn);

// The factor left when the chain divides by w_d / sqrt(var_d + eps_chain)
// built from other tensors than the BatchNorm's own (a quantizer that
// fake-quantizes the BatchNorm's parameters but builds the divisor from the
// float ones): r_c = (bn_w_c / sqrt(bn_var_c + eps_bn)) / (w_d,c / sqrt(var_d,c + eps_chain)).
std::vector<float> divisorFactor(const BatchNormParameters& bn, std::span<const float> divisor_weight,
                                 std::span<const float> divisor_var, float eps_chain);

// Per-channel scales times r: s'_c = s_c * r_c (the weight and bias scales
// of a per-channel conv absorbing the eps-mismatch factor exactly).
std::vector<float> scaleByFactor(std::span<const float> scales, std::span<const float> factor);

// A float bias with the shift added: b_c + shift_c in float32 (b absent: shift).
std::vector<float> addShiftToFloatBias(std::optional<std::span<const float>> bias, std::span<const float> shift);

}  // namespace qatfold::numerics
