// The output quantization of a layer a BatchNorm was folded into.
//
// Folding moves the BatchNorm's per-channel shift C into the layer, so the
// quantization right after it, calibrated on y, now sees y + C. These pure
// functions measure how far C moves the values inside that range (the
// estimate the report flags) and compute the remedy the fold may apply on
// request: a range stretched to cover y + C. Both the chain fold (Cadence's
// int32 biases) and the fold of a BatchNorm behind a quantized layer make
// this decision, so it lives here once.
#pragma once

#include <cstdint>
#include <span>

namespace qatfold::numerics {

// An affine per-tensor quantization: real = (q - zero_point) * scale, q in
// [quant_min, quant_max].
struct AffineRange {
  double scale = 1;
  std::int64_t zero_point = 0;
  std::int64_t quant_min = -128;
  std::int64_t quant_max = 127;

  double low() const { return static_cast<double>(quant_min - zero_point) * scale; }
  double high() const { return static_cast<double>(quant_max - zero_point) * scale; }
};

// How far the folded shift moves a layer's output inside the range its
// output quantization can represent, [low(), high()].
struct OutputRangeRisk {
  float max_abs_shift = 0;    // max_c |shift_c|
  double range_low = 0;       // (qmin - zp) * s
  double range_high = 0;      // (qmax - zp) * s
  double relative_shift = 0;  // max_abs_shift / (range_high - range_low)
};
OutputRangeRisk outputRangeRisk(std::span<const float> shift, const AffineRange& range);

// The range stretched to hold y + C for every y it held: it covers
// [low + min(0, min C), high + max(0, max C)] over the same integers
// [quant_min, quant_max]. With n = quant_max - quant_min, the scale is
// (high' - low') / (n - 1) and the zero point quant_min - floor(low' / scale):
// one step more than the width needs, so that the integer zero point can
// place the grid with both ends covered (torch's MinMaxObserver rounds the
// zero point instead, which can leave up to half a step of either end
// outside). Computed in double. A shift of zero everywhere, a range that
// does not hold 0 or one of fewer than three integers comes back unchanged;
// `shift` must be finite.
AffineRange widenToCoverShift(std::span<const float> shift, const AffineRange& range);

// The range over `like`'s integers that covers [min(0, low), max(0, high)],
// placed as widenToCoverShift places it (one spare step, floor). `like`
// comes back unchanged when it has fewer than three integers or the span is
// empty or not finite.
AffineRange coveringRange(double low, double high, const AffineRange& like);

// The quantization torch's MinMaxObserver (per-tensor affine) gives a value
// observed in [min, max], over `like`'s integers: scale = (max(max, 0) -
// min(min, 0)) / (quant_max - quant_min), at least float32 epsilon, and zero
// point quant_min - round_half_even(min(min, 0) / scale), clamped; in
// float32, as the observer computes it.
AffineRange observedRange(float min, float max, const AffineRange& like);

// An estimate of the range of f_c * y + shift_c for y in `y`'s range:
// the union over channels, through 0, as coveringRange places it. For a
// layer whose BatchNorm (factor f, shift) was folded into its weights and
// bias when nothing else tells the folded output's range.
AffineRange estimateFoldedRange(const AffineRange& y, std::span<const float> factor, std::span<const float> shift);

}  // namespace qatfold::numerics
