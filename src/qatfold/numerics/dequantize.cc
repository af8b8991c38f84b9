#include "qatfold/numerics/dequantize.h"

namespace qatfold::numerics {

std::vector<float> dequantizePerTensor(std::span<const double> values, double scale, std::int64_t zero_point) {
  std::vector<float> out(values.size());
  const auto s = static_cast<float>(scale);
  const auto zp = static_cast<float>(zero_point);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = (static_cast<float>(values[i]) - zp) * s;
  return out;
}

std::vector<float> dequantizePerChannel(std::span<const double> values, std::span<const float> scales,
                                        std::span<const std::int64_t> zero_points) {
  std::vector<float> out(values.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    const auto shifted = static_cast<std::int64_t>(values[i]) - zero_points[i];
    out[i] = static_cast<float>(shifted) * scales[i];
  }
  return out;
}

}  // namespace qatfold::numerics
