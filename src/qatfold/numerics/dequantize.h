// Dequantizing constant tensors as torch's quantized_decomposed ops do, in
// float32, for the passes that read a parameter through its dequantize (a
// quantizer that fake-quantizes BatchNorm parameters leaves
// batch_norm(dq(w_q), dq(b_q), dq(mean_q), dq(var_q))).
//
//   per tensor:   (float(q) - float(zp)) * float(s)       (input.to(float32) - zp) * scale
//   per channel:  float(q_c - zp_c) * s_c                 (input - zero_points) * scales
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace qatfold::numerics {

std::vector<float> dequantizePerTensor(std::span<const double> values, double scale, std::int64_t zero_point);

// One scale and zero point per element (a vector dequantized along axis 0).
std::vector<float> dequantizePerChannel(std::span<const double> values, std::span<const float> scales,
                                        std::span<const std::int64_t> zero_points);

}  // namespace qatfold::numerics
