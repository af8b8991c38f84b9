#include "qatfold/numerics/output_range.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace qatfold::numerics {

OutputRangeRisk outputRangeRisk(std::span<const float> shift, const AffineRange& range) {
  OutputRangeRisk risk;
  for (float value : shift) risk.max_abs_shift = std::max(risk.max_abs_shift, std::fabs(value));
  risk.range_low = range.low();
  risk.range_high = range.high();
  const double width = risk.range_high - risk.range_low;
  risk.relative_shift = width > 0 ? risk.max_abs_shift / width : HUGE_VAL;
  return risk;
}

AffineRange coveringRange(double low, double high, const AffineRange& like) {
  low = std::min(0.0, low);
  high = std::max(0.0, high);
  if (!std::isfinite(low) || !std::isfinite(high) || high - low <= 0 || like.quant_max - like.quant_min < 2) {
    return like;
  }
  AffineRange covering = like;
  covering.scale = (high - low) / static_cast<double>(like.quant_max - like.quant_min - 1);
  // low <= 0 <= high, so quant_min <= zero_point <= quant_max - 1.
  covering.zero_point = like.quant_min - static_cast<std::int64_t>(std::floor(low / covering.scale));
  return covering;
}

AffineRange widenToCoverShift(std::span<const float> shift, const AffineRange& range) {
  double lowest = 0;
  double highest = 0;
  for (float value : shift) {
    lowest = std::min(lowest, static_cast<double>(value));
    highest = std::max(highest, static_cast<double>(value));
  }
  const bool holds_zero = range.low() <= 0 && range.high() >= 0;
  if ((lowest == 0 && highest == 0) || !holds_zero) return range;
  return coveringRange(range.low() + lowest, range.high() + highest, range);
}

AffineRange observedRange(float min, float max, const AffineRange& like) {
  const float low = std::min(min, 0.0f);
  const float high = std::max(max, 0.0f);
  float scale = (high - low) / static_cast<float>(like.quant_max - like.quant_min);
  scale = std::max(scale, std::numeric_limits<float>::epsilon());
  AffineRange observed = like;
  observed.scale = scale;
  const auto steps = static_cast<std::int64_t>(std::nearbyint(low / scale));  // default rounding: half to even
  observed.zero_point = std::clamp(like.quant_min - steps, like.quant_min, like.quant_max);
  return observed;
}

AffineRange estimateFoldedRange(const AffineRange& y, std::span<const float> factor, std::span<const float> shift) {
  double low = 0;
  double high = 0;
  for (std::size_t c = 0; c < factor.size() && c < shift.size(); ++c) {
    const double a = factor[c] * y.low();
    const double b = factor[c] * y.high();
    low = std::min(low, std::min(a, b) + shift[c]);
    high = std::max(high, std::max(a, b) + shift[c]);
  }
  return coveringRange(low, high, y);
}

}  // namespace qatfold::numerics
