#include "qatfold/numerics/output_range.h"

#include <algorithm>
#include <cmath>

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

AffineRange widenToCoverShift(std::span<const float> shift, const AffineRange& range) {
  double lowest = 0;
  double highest = 0;
  for (float value : shift) {
    lowest = std::min(lowest, static_cast<double>(value));
    highest = std::max(highest, static_cast<double>(value));
  }
  const bool holds_zero = range.low() <= 0 && range.high() >= 0;
  if ((lowest == 0 && highest == 0) || !holds_zero || range.quant_max - range.quant_min < 2) return range;
  const double low = range.low() + lowest;
  const double high = range.high() + highest;
  AffineRange widened = range;
  widened.scale = (high - low) / static_cast<double>(range.quant_max - range.quant_min - 1);
  // low <= 0 <= high, so quant_min <= zero_point <= quant_max - 1.
  widened.zero_point = range.quant_min - static_cast<std::int64_t>(std::floor(low / widened.scale));
  return widened;
}

}  // namespace qatfold::numerics
