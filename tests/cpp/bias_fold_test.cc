// The fold numerics against values computed by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "qatfold/numerics/bias_fold.h"
#include "qatfold/numerics/output_range.h"
#include "qatfold/numerics/weight_fold.h"

namespace qatfold::numerics {
namespace {

constexpr std::int64_t kMin = std::numeric_limits<std::int32_t>::min();
constexpr std::int64_t kMax = std::numeric_limits<std::int32_t>::max();

QuantizedBias fold(std::vector<std::int32_t> bias, std::vector<float> shift, float scale, std::int64_t zp = 0,
                   std::int64_t qmin = kMin, std::int64_t qmax = kMax) {
  std::vector<float> scales = {scale};
  std::vector<std::int64_t> zps = {zp};
  return addShiftToQuantizedBias(bias, shift, BiasQuantization{scales, zps, qmin, qmax});
}

TEST(BatchNormShift, MatchesHandComputedValues) {
  // std = sqrt(3 + 1) = 2; with orig_bias 3: (3 - 1) * 2 / 2 + 0.5 = 2.5; without: -1 * 2 / 2 + 0.5 = -0.5.
  std::vector<float> w = {2}, b = {0.5f}, mean = {1}, var = {3}, orig = {3};
  BatchNormParameters bn{w, b, mean, var, 1.0f};
  EXPECT_EQ(batchNormShift(bn, std::span<const float>(orig)), std::vector<float>{2.5f});
  EXPECT_EQ(batchNormShift(bn, std::nullopt), std::vector<float>{-0.5f});
}

TEST(BatchNormShift, EpsMattersWhenVarianceIsZero) {
  std::vector<float> w = {1}, b = {0}, mean = {-1}, var = {0};
  for (float eps : {1e-5f, 1e-3f, 0.25f}) {
    BatchNormParameters bn{w, b, mean, var, eps};
    EXPECT_EQ(batchNormShift(bn, std::nullopt)[0], 1.0f / std::sqrt(eps)) << eps;
  }
}

TEST(BatchNormShift, KeepsTheReferenceOperationOrder) {
  // ((o - m) * w) / std + b, each step rounded to float32: no reassociation.
  std::vector<float> w = {0.1f}, b = {0.3f}, mean = {0.7f}, var = {0.2f}, orig = {1.9f};
  BatchNormParameters bn{w, b, mean, var, 1e-5f};
  const float std_dev = std::sqrt(0.2f + 1e-5f);
  const float centered = 1.9f - 0.7f;
  const float scaled = centered * 0.1f;
  const float expected = scaled / std_dev + 0.3f;
  EXPECT_EQ(batchNormShift(bn, std::span<const float>(orig))[0], expected);
}

TEST(AddShift, RoundsHalfToEven) {
  QuantizedBias result = fold({0, 0, 0, 0, 0, 0}, {2.5f, 3.5f, -2.5f, -0.5f, 0.5f, 1.5f}, 1.0f);
  EXPECT_EQ(result.values, (std::vector<std::int32_t>{2, 4, -2, 0, 0, 2}));
  EXPECT_EQ(result.clamped, 0u);
}

TEST(AddShift, AddsToTheExistingBiasWithZeroPoint) {
  // ((7 - 2) * 0.5 + 1.25) / 0.5 = 7.5 -> 8 (even), + zp 2 = 10.
  EXPECT_EQ(fold({7}, {1.25f}, 0.5f, 2).values, std::vector<std::int32_t>{10});
  // Negative: ((-4 - 0) * 0.25 - 0.375) / 0.25 = -5.5 -> -6.
  EXPECT_EQ(fold({-4}, {-0.375f}, 0.25f).values, std::vector<std::int32_t>{-6});
}

TEST(AddShift, ClampsAtBothEndsAndCounts) {
  QuantizedBias result = fold({0, 0, 0}, {100.0f, -100.0f, 3.0f}, 1.0f, 0, -10, 10);
  EXPECT_EQ(result.values, (std::vector<std::int32_t>{10, -10, 3}));
  EXPECT_EQ(result.clamped, 2u);
}

TEST(AddShift, SaturatesAtInt32InsteadOfWrapping) {
  // float32(INT32_MAX) is 2^31: a cast would wrap to INT32_MIN; we clamp.
  QuantizedBias high = fold({std::numeric_limits<std::int32_t>::max()}, {1000.0f}, 1.0f);
  EXPECT_EQ(high.values[0], std::numeric_limits<std::int32_t>::max());
  EXPECT_EQ(high.clamped, 1u);
  QuantizedBias low = fold({std::numeric_limits<std::int32_t>::min()}, {-1e12f}, 1.0f);
  EXPECT_EQ(low.values[0], std::numeric_limits<std::int32_t>::min());
  EXPECT_EQ(low.clamped, 1u);
}

TEST(AddShift, PerChannelScales) {
  std::vector<float> scales = {1.0f, 0.5f};
  std::vector<std::int64_t> zps = {0, 0};
  std::vector<std::int32_t> bias = {1, 1};
  std::vector<float> shift = {1.0f, 1.0f};
  QuantizedBias result = addShiftToQuantizedBias(bias, shift, BiasQuantization{scales, zps, kMin, kMax});
  // (1 * 1 + 1) / 1 = 2; (1 * 0.5 + 1) / 0.5 = 3.
  EXPECT_EQ(result.values, (std::vector<std::int32_t>{2, 3}));
}

TEST(QuantizeBias, PerTensorUsesTheReciprocalInFloat32) {
  // 1 / 0.1 in double is 10, 10.0f exactly: 0.25 * 10 = 2.5 -> 2, 0.35 * 10 = 3.5 -> 4.
  std::vector<float> values = {0.25f, 0.35f, -0.05f, 1.0f};
  QuantizedBias result = quantizeBiasPerTensor(values, 0.1, 0, kMin, kMax);
  const float inverse = static_cast<float>(1.0 / 0.1);
  std::vector<std::int32_t> expected;
  for (float v : values) expected.push_back(static_cast<std::int32_t>(std::nearbyint(v * inverse)));
  EXPECT_EQ(result.values, expected);
  EXPECT_EQ(result.values[0], 2);
}

TEST(QuantizeBias, PerChannel) {
  std::vector<float> values = {1.0f, 1.0f, -3.0f};
  std::vector<float> scales = {0.5f, 0.25f, 2.0f};
  std::vector<std::int64_t> zps = {0, 0, 0};
  EXPECT_EQ(quantizeBiasPerChannel(values, scales, zps, kMin, kMax).values, (std::vector<std::int32_t>{2, 4, -2}));
}

TEST(OutputRangeRisk, IsTheLargestShiftOverTheRange) {
  std::vector<float> shift = {0.1f, -0.3f};
  OutputRangeRisk risk = outputRangeRisk(shift, AffineRange{0.01, 0, -128, 127});
  EXPECT_FLOAT_EQ(risk.max_abs_shift, 0.3f);
  EXPECT_DOUBLE_EQ(risk.range_low, -1.28);
  EXPECT_DOUBLE_EQ(risk.range_high, 1.27);
  EXPECT_NEAR(risk.relative_shift, 0.3 / 2.55, 1e-7);
}

// The widened range's ends, as the quantization gives them.
void expectCovers(const AffineRange& widened, double low, double high) {
  EXPECT_LE(widened.low(), low);
  EXPECT_GE(widened.high(), high);
  // One spare step, shared between the ends.
  EXPECT_NEAR((widened.high() - widened.low()) - (high - low), widened.scale, 1e-9 * (high - low));
}

TEST(WidenToCoverShift, StretchesEachEndByTheShiftThatPushesPastIt) {
  // [-1.28, 1.27] in steps of 0.01; C in [-0.3, 0.5]: [-1.58, 1.77] over the same integers.
  std::vector<float> shift = {0.5f, -0.3f, 0.1f};
  const AffineRange widened = widenToCoverShift(shift, AffineRange{0.01, 0, -128, 127});
  const double low = -1.28 - 0.3f, high = 1.27 + 0.5f;
  EXPECT_DOUBLE_EQ(widened.scale, (high - low) / 254);
  EXPECT_EQ(widened.zero_point, -128 - static_cast<std::int64_t>(std::floor(low / widened.scale)));
  EXPECT_EQ(widened.quant_min, -128);
  EXPECT_EQ(widened.quant_max, 127);
  expectCovers(widened, low, high);
}

TEST(WidenToCoverShift, OneSidedShiftKeepsTheOtherEnd) {
  // Only positive shifts: the low end stays covered.
  std::vector<float> shift = {2.0f, 0.25f};
  const AffineRange widened = widenToCoverShift(shift, AffineRange{0.01, 0, -128, 127});
  EXPECT_DOUBLE_EQ(widened.scale, (1.27 + 2.0 + 1.28) / 254);
  expectCovers(widened, -1.28, 3.27);
  // uint8 with the zero point at 0 (a ReLU's range [0, 2.55]), shifted down by 1: [-1, 2.55].
  std::vector<float> down = {-1.0f};
  const AffineRange relu = widenToCoverShift(down, AffineRange{0.01, 0, 0, 255});
  EXPECT_DOUBLE_EQ(relu.scale, 3.55 / 254);
  EXPECT_EQ(relu.zero_point, 72);  // -floor(-1 / 0.013976) = 72
  expectCovers(relu, -1.0, 2.55);
}

TEST(WidenToCoverShift, CoversTheEndsWhateverTheZeroPointRounding) {
  // Ranges and shifts where rounding the zero point to nearest (MinMaxObserver) would cut an end.
  for (double shift_low : {-0.0, -0.113, -0.37, -1.0, -5.5}) {
    for (double shift_high : {0.0, 0.05, 0.49, 2.7, 53.4}) {
      for (std::int64_t zero_point : {-128, -119, -3, 0, 17, 127}) {
        if (shift_low == 0 && shift_high == 0) continue;  // nothing to widen (NoShiftLeavesTheRange)
        std::vector<float> shift = {static_cast<float>(shift_low), static_cast<float>(shift_high)};
        const AffineRange range{0.0167, zero_point, -128, 127};
        const AffineRange widened = widenToCoverShift(shift, range);
        expectCovers(widened, range.low() + shift[0], range.high() + shift[1]);
        EXPECT_GE(widened.zero_point, -128);
        EXPECT_LE(widened.zero_point, 127);
      }
    }
  }
}

TEST(WidenToCoverShift, NoShiftLeavesTheRange) {
  std::vector<float> shift = {0.0f, -0.0f};
  const AffineRange range{0.02, 3, -128, 127};
  const AffineRange same = widenToCoverShift(shift, range);
  EXPECT_EQ(same.scale, range.scale);
  EXPECT_EQ(same.zero_point, range.zero_point);
  // A zero point outside the integers (the range misses 0) is not widened either.
  std::vector<float> some = {1.0f};
  EXPECT_EQ(widenToCoverShift(some, AffineRange{0.02, 200, -128, 127}).zero_point, 200);
}

}  // namespace
TEST(WeightFold, ScalesEachOutputChannelAndShiftsTheBias) {
  // Two output channels of three weights each; BN scale 2/sqrt(3+1) = 1 and 1/sqrt(0+0.25) = 2.
  const std::vector<float> weight = {1, 2, 3, -1, -2, -3};
  const std::vector<float> bias = {0.5f, -0.5f};
  const std::vector<float> bn_w = {2, 1}, bn_b = {0.25f, 1}, mean = {1.5f, 0.5f}, var = {3, 0};
  numerics::FoldedWeights folded =
      numerics::foldBatchNormIntoWeights(weight, 2, std::span<const float>(bias), {bn_w, bn_b, mean, var, 0.25f});
  EXPECT_EQ(folded.weight, (std::vector<float>{1 * 2 / std::sqrt(3.25f), 2 * 2 / std::sqrt(3.25f),
                                               3 * 2 / std::sqrt(3.25f), -2, -4, -6}));
  EXPECT_FLOAT_EQ(folded.bias[0], (0.5f - 1.5f) * 2 / std::sqrt(3.25f) + 0.25f);
  EXPECT_FLOAT_EQ(folded.bias[1], (-0.5f - 0.5f) * 2 + 1);
  // Without a conv bias, b = 0.
  numerics::FoldedWeights no_bias =
      numerics::foldBatchNormIntoWeights(weight, 2, std::nullopt, {bn_w, bn_b, mean, var, 0.25f});
  EXPECT_FLOAT_EQ(no_bias.bias[1], -0.5f * 2 + 1);
}

}  // namespace qatfold::numerics
