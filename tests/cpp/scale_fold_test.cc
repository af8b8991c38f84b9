// FoldBatchNormIntoWeightScales on text graphs, and its numerics
// (numerics/scale_fold.h, the output ranges of numerics/output_range.h).
#include <gtest/gtest.h>

#include <cmath>

#include "qatfold/numerics/output_range.h"
#include "qatfold/numerics/scale_fold.h"
#include "qatfold/report/fold_report.h"
#include "text_graphs.h"

namespace qatfold::passes {
namespace {

using testing::edited;
using testing::foldText;
using testing::kQuantizedBatchNorm;
using testing::TextFold;

// kQuantizedBatchNorm's numbers, in the float32 arithmetic of the definition.
const float kBnW[] = {1.5f, -0.5f}, kBnB[] = {0.25f, -0.25f}, kMean[] = {0.5f, -0.5f}, kVar[] = {4.0f, 0.25f};
const float kBias[] = {0.5f, 0.25f}, kScales[] = {0.01f, 0.02f};
float factor(int c) { return kBnW[c] * (1.0f / std::sqrt(kVar[c] + 1e-5f)); }

const graph::Node* node(const TextFold& f, const std::string& name) {
  return f.loaded.graph->getValue(name)->producer();
}
template <class T>
std::vector<T> data(const graph::Value* v) {
  return v->payload()->view().values<T>();
}

// The folded weight, scales and bias: the integers kept (channel 1's
// negated, its factor is negative), the scales times |f|, the bias shifted.
void expectFoldedLayer(const TextFold& f) {
  const graph::Node* w_dq = node(f, "w_dq");
  EXPECT_EQ(data<std::int8_t>(w_dq->getInput("input")), (std::vector<std::int8_t>{100, -20, -10, -127}));
  EXPECT_EQ(data<float>(w_dq->getInput("scales")),
            (std::vector<float>{kScales[0] * std::fabs(factor(0)), kScales[1] * std::fabs(factor(1))}));
  std::vector<float> bias;
  for (int c = 0; c < 2; ++c)
    bias.push_back((kBias[c] - kMean[c]) * (1.0f / std::sqrt(kVar[c] + 1e-5f)) * kBnW[c] + kBnB[c]);
  EXPECT_EQ(data<float>(node(f, "conv")->getInput("bias")), bias);
  EXPECT_EQ(f.loaded.graph->tryGetValue("bn"), nullptr);
}

TEST(FoldBatchNormIntoWeightScales, TrainedQuantizeAfterTheBatchNormTakesTheConvOutput) {
  TextFold f = foldText(kQuantizedBatchNorm);
  ASSERT_EQ(f.report.folded.size(), 1u) << qatfold::report::foldReportText(f.report, true);
  expectFoldedLayer(f);
  // conv -> o_q: the pair calibrated on y is gone.
  EXPECT_EQ(node(f, "o_q")->getInput("input")->name(), "conv");
  EXPECT_EQ(f.loaded.graph->tryGetValue("y_q"), nullptr);
  EXPECT_EQ(f.loaded.graph->tryGetValue("y_dq"), nullptr);
  const FoldedConv& folded = f.report.folded[0];
  EXPECT_EQ(folded.folded_by, "FoldBatchNormIntoWeightScales");
  ASSERT_TRUE(folded.requantized.has_value());
  EXPECT_EQ(folded.requantized->source, "trained");
  EXPECT_EQ(folded.requantized->negated_channels, 1u);
  EXPECT_DOUBLE_EQ(folded.requantized->after.scale, 0.05);
  EXPECT_EQ(folded.requantized->after.zero_point, 3);
  const Json json = qatfold::report::foldReportJson(f.report)["folded"][0]["requantized"];
  EXPECT_EQ(json["source"], "trained");
  EXPECT_EQ(json["negated_channels"], 1);
  EXPECT_NE(qatfold::report::foldReportText(f.report, false).find("output quantization: conv: trained"),
            std::string::npos)
      << qatfold::report::foldReportText(f.report, false);
}

TEST(FoldBatchNormIntoWeightScales, TrainedQuantizeAfterAReluKeepsTheReluOnTheConv) {
  TextFold f = foldText(edited(kQuantizedBatchNorm,
                               {{"%o_q =", "%r = aten.relu.default(self=%bn): float32[1, 2, 4, 4]\n%o_q ="},
                                {"quantize_per_tensor.default(input=%bn,", "quantize_per_tensor.default(input=%r,"}}));
  ASSERT_EQ(f.report.folded.size(), 1u) << qatfold::report::foldReportText(f.report, true);
  expectFoldedLayer(f);
  EXPECT_EQ(node(f, "r")->getInput("self")->name(), "conv");  // conv -> relu -> q: what XNNPACK fuses
  EXPECT_EQ(f.report.folded[0].requantized->source, "trained after relu");
}

// Arm's shape: the layer feeds its batch_norm directly (no quantize between,
// the pair annotated as one unit), the batch_norm reads dequantized copies of
// its parameters, and the bias is int32 on s_in * s_w per channel. NXP's
// NeutronQuantizer leaves the same for layers torchao builds no QAT chain
// for (its conv bias int32 per channel, derived from s_in and s_w; its
// batch_norm's parameters float), quantized after the batch_norm or its ReLU.
TEST(FoldBatchNormIntoWeightScales, LayerFeedingItsBatchNormDirectlyKeepsAnInt32Bias) {
  const std::string direct = edited(
      kQuantizedBatchNorm,
      {{"parameter %b = \"conv.bias\": float32[2] = [0.5, 0.25]",
        "buffer %b_q = \"b_q\": int32[2] = [1000, 250]\nbuffer %b_s = \"b_s\": float32[2] = [0.0005, 0.001]\n"
        "buffer %mean_q = \"mean_q\": int8[2] = [50, -50]"},
       {"%conv = aten.conv2d.default(input=%x_dq, weight=%w_dq, bias=%b)",
        "%b_dq = quantized_decomposed.dequantize_per_channel.default(input=%b_q, scales=%b_s, zero_points=%w_zp, "
        "axis=0, quant_min=-2147483647, quant_max=2147483647, dtype=int32): float32[2]\n"
        "%mean_dq = quantized_decomposed.dequantize_per_tensor.default(input=%mean_q, scale=0.01, zero_point=0, "
        "quant_min=-128, quant_max=127, dtype=int8): float32[2]\n"
        "%conv = aten.conv2d.default(input=%x_dq, weight=%w_dq, bias=%b_dq)"},
       {"%y_q = quantized_decomposed.quantize_per_tensor.default(input=%conv, scale=0.1, zero_point=0, quant_min=-128, "
        "quant_max=127, dtype=int8): int8[1, 2, 4, 4]\n",
        ""},
       {"%y_dq = quantized_decomposed.dequantize_per_tensor.default(input=%y_q, scale=0.1, zero_point=0, "
        "quant_min=-128, quant_max=127, dtype=int8): float32[1, 2, 4, 4]\n",
        ""},
       {"batch_norm.default(input=%y_dq", "batch_norm.default(input=%conv"},
       {"running_mean=%mean,", "running_mean=%mean_dq,"}});
  TextFold f = foldText(direct);
  ASSERT_EQ(f.report.folded.size(), 1u) << qatfold::report::foldReportText(f.report, true);
  const FoldedConv& folded = f.report.folded[0];
  EXPECT_FALSE(folded.float_bias);
  EXPECT_TRUE(folded.per_channel_bias);
  EXPECT_EQ(folded.requantized->source, "trained");
  EXPECT_EQ(node(f, "o_q")->getInput("input")->name(), "conv");
  // Weight scales times |f|, channel 1 negated, as for a float bias.
  const graph::Node* w_dq = node(f, "w_dq");
  EXPECT_EQ(data<std::int8_t>(w_dq->getInput("input")), (std::vector<std::int8_t>{100, -20, -10, -127}));
  const std::vector<float> scales = data<float>(w_dq->getInput("scales"));
  // The bias: B_c = (b_c - mean_c) * f_c + bn_b_c with b and mean dequantized,
  // as int32 on s_in * s'_c.
  const graph::Node* conv = node(f, "conv");
  const graph::Node* bias_dq = conv->getInput("bias")->producer();
  ASSERT_NE(bias_dq, nullptr);
  EXPECT_EQ(bias_dq->target(), "torch.ops.quantized_decomposed.dequantize_per_channel.default");
  const std::vector<float> bias_scales = data<float>(bias_dq->getInput("scales"));
  const std::vector<std::int32_t> bias = data<std::int32_t>(bias_dq->getInput("input"));
  const double b[] = {1000 * 0.0005, 250 * 0.001}, mean[] = {0.5, -0.5};
  for (int c = 0; c < 2; ++c) {
    EXPECT_FLOAT_EQ(bias_scales[c], 0.05f * scales[c]);
    const double f_c = kBnW[c] / std::sqrt(kVar[c] + 1e-5);
    const double expected = ((b[c] - mean[c]) * f_c + kBnB[c]) / (0.05 * kScales[c] * std::fabs(f_c));
    EXPECT_NEAR(bias[c], expected, 0.5 + 1e-6) << c;
  }
  EXPECT_EQ(f.loaded.graph->tryGetValue("bn"), nullptr);
}

TEST(FoldBatchNormIntoWeightScales, LayerFeedingItsBatchNormDirectlyIsFoldedOnlyOntoATrainedQuantize) {
  const std::vector<std::pair<std::string, std::string>> direct = {
      {"%y_q = quantized_decomposed.quantize_per_tensor.default(input=%conv, scale=0.1, zero_point=0, "
       "quant_min=-128, quant_max=127, dtype=int8): int8[1, 2, 4, 4]\n",
       ""},
      {"%y_dq = quantized_decomposed.dequantize_per_tensor.default(input=%y_q, scale=0.1, zero_point=0, "
       "quant_min=-128, quant_max=127, dtype=int8): float32[1, 2, 4, 4]\n",
       ""},
      {"batch_norm.default(input=%y_dq", "batch_norm.default(input=%conv"}};
  // No quantize after the batch_norm: nothing tells the folded output's range.
  auto untrained = direct;
  untrained.push_back({"return %o_dq", "return %bn"});
  TextFold f = foldText(edited(kQuantizedBatchNorm, untrained));
  ASSERT_EQ(f.report.skipped.size(), 1u);
  EXPECT_EQ(f.report.skipped[0].code(), "output-range-unknown");
  // The layer's output read by more than the batch_norm: not folded either.
  auto shared = direct;
  shared.push_back({"return %o_dq", "return %o_dq, %conv"});
  TextFold g = foldText(edited(kQuantizedBatchNorm, shared));
  ASSERT_EQ(g.report.skipped.size(), 1u);
  EXPECT_EQ(g.report.skipped[0].code(), "conv-output-shared");
}

TEST(FoldBatchNormIntoWeightScales, CalibratedRangeIsQuantizedAsMinMaxObserverDoes) {
  FoldOptions options;
  options.observed_ranges["bn"] = {-1.0f, 3.0f};
  TextFold f = foldText(edited(kQuantizedBatchNorm, {{"return %o_dq", "return %bn"}}), options);
  ASSERT_EQ(f.report.folded.size(), 1u) << qatfold::report::foldReportText(f.report, true);
  expectFoldedLayer(f);
  // torch.ao MinMaxObserver(int8, -128..127) on [-1, 3]: scale 4 / 255, zero point -128 - round(-63.75) = -64.
  for (const char* name : {"y_q", "y_dq"}) {
    EXPECT_EQ(*node(f, name)->tryGetArgument("scale")->asFloat(), static_cast<double>(4.0f / 255.0f)) << name;
    EXPECT_EQ(*node(f, name)->tryGetArgument("zero_point")->asInt(), -64) << name;
  }
  EXPECT_EQ(f.loaded.graph->outputs()[0]->name(), "y_dq");
  EXPECT_EQ(f.report.folded[0].requantized->source, "calibrated");
  EXPECT_DOUBLE_EQ(f.report.folded[0].requantized->before.scale, 0.1);
}

TEST(FoldBatchNormIntoWeightScales, EstimatedRangeOnlyWhenAsked) {
  const std::string program = edited(kQuantizedBatchNorm, {{"return %o_dq", "return %bn"}});
  EXPECT_EQ(foldText(program).report.skipped.at(0).code(), "output-range-unknown");
  FoldOptions options;
  options.quantized_batch_norm = QuantizedBatchNorm::kEstimate;
  TextFold f = foldText(program, options);
  ASSERT_EQ(f.report.folded.size(), 1u) << qatfold::report::foldReportText(f.report, true);
  expectFoldedLayer(f);
  const numerics::AffineRange after = f.report.folded[0].requantized->after;
  EXPECT_EQ(f.report.folded[0].requantized->source, "estimated");
  // y in [-12.8, 12.7] through each channel's f_c and shift bn_b - f_c * mean: every value is covered.
  for (int c = 0; c < 2; ++c) {
    const double shift = kBnB[c] - factor(c) * kMean[c];
    for (double y : {-12.8, 12.7}) {
      const double folded = factor(c) * y + shift;
      EXPECT_LE(after.low(), folded);
      EXPECT_GE(after.high(), folded);
    }
  }
  EXPECT_EQ(*node(f, "y_q")->tryGetArgument("zero_point")->asInt(), after.zero_point);
}

// kQuantizedBatchNorm with a second quantize/dequantize pair between the
// conv's output pair and the batch_norm, as Qualcomm's per-channel QAT
// programs have it (passes/requantize_pair.h), on `scale` and `zero_point`.
std::string withSecondPair(const std::string& scale, const std::string& zero_point) {
  const std::string args =
      "scale=" + scale + ", zero_point=" + zero_point + ", quant_min=-128, quant_max=127, dtype=int8)";
  return edited(kQuantizedBatchNorm, {{"%bn = aten.batch_norm.default(input=%y_dq,",
                                       "%y_q2 = quantized_decomposed.quantize_per_tensor.default(input=%y_dq, " + args +
                                           ": int8[1, 2, 4, 4]\n"
                                           "%y_dq2 = quantized_decomposed.dequantize_per_tensor.default(input=%y_q2, " +
                                           args +
                                           ": float32[1, 2, 4, 4]\n"
                                           "%bn = aten.batch_norm.default(input=%y_dq2,"}});
}

TEST(FoldBatchNormIntoWeightScales, SeesPastASecondPairWithTheSameParameters) {
  const std::string program = withSecondPair("0.1", "0");
  TextFold f = foldText(program);
  EXPECT_NE(f.before.find("y_q2"), std::string::npos);
  ASSERT_EQ(f.report.folded.size(), 1u) << qatfold::report::foldReportText(f.report, true);
  expectFoldedLayer(f);
  EXPECT_EQ(node(f, "o_q")->getInput("input")->name(), "conv");
  for (const char* gone : {"y_q", "y_dq", "y_q2", "y_dq2"})
    EXPECT_EQ(f.loaded.graph->tryGetValue(gone), nullptr) << gone;
  ASSERT_EQ(f.report.folded[0].requantized->looked_through.size(), 1u);
  EXPECT_EQ(f.report.folded[0].requantized->looked_through[0],
            "a second quantize/dequantize with the same parameters (scale 0.1, zero point 0): a no-op");
}

TEST(FoldBatchNormIntoWeightScales, SeesPastASecondPairWithOtherParametersAndSaysSo) {
  TextFold f = foldText(withSecondPair("0.09", "1"));
  ASSERT_EQ(f.report.folded.size(), 1u) << qatfold::report::foldReportText(f.report, true);
  expectFoldedLayer(f);
  const std::string said =
      "a second quantize/dequantize re-quantizing from scale 0.1, zero point 0 to scale 0.09, zero point 1: both "
      "replaced by the folded output's quantization";
  EXPECT_EQ(f.report.folded[0].requantized->looked_through, std::vector<std::string>{said});
  EXPECT_EQ(qatfold::report::foldReportJson(f.report)["folded"][0]["requantized"]["looked_through"][0], said);
  EXPECT_NE(qatfold::report::foldReportText(f.report, false).find("looked through: conv: " + said), std::string::npos);
}

TEST(FoldBatchNormIntoWeightScales, CalibratesTheFirstPairAndDropsTheSecond) {
  FoldOptions options;
  options.observed_ranges["bn"] = {-1.0f, 3.0f};
  TextFold f = foldText(edited(withSecondPair("0.09", "1"), {{"return %o_dq", "return %bn"}}), options);
  ASSERT_EQ(f.report.folded.size(), 1u) << qatfold::report::foldReportText(f.report, true);
  expectFoldedLayer(f);
  EXPECT_EQ(*node(f, "y_q")->tryGetArgument("zero_point")->asInt(), -64);
  EXPECT_EQ(f.loaded.graph->outputs()[0]->name(), "y_dq");
  EXPECT_EQ(f.loaded.graph->tryGetValue("y_q2"), nullptr);
  EXPECT_EQ(f.loaded.graph->tryGetValue("y_dq2"), nullptr);
}

TEST(FoldBatchNormIntoWeightScales, ASecondPairReadElsewhereIsRefusedNamingIt) {
  TextFold f = foldText(edited(withSecondPair("0.09", "1"), {{"return %o_dq", "return %o_dq, %y_dq2"}}));
  ASSERT_EQ(f.report.skipped.size(), 1u);
  EXPECT_EQ(f.report.skipped[0].code(), "requantized-output-shared");
  EXPECT_NE(f.report.skipped[0].reason().find("'y_q2'"), std::string::npos) << f.report.skipped[0].reason();
  // The first pair read elsewhere: the layer's output quantization is shared.
  TextFold g = foldText(edited(withSecondPair("0.09", "1"), {{"return %o_dq", "return %o_dq, %y_dq"}}));
  ASSERT_EQ(g.report.skipped.size(), 1u);
  EXPECT_EQ(g.report.skipped[0].code(), "quantized-output-shared");
  EXPECT_EQ(g.report.folded.size(), 0u);
}

TEST(ScaleFoldNumerics, TransposedWeightsNegateAlongAxisOne) {
  // [in 2, out 3, 1]: channel c is the middle index.
  const std::vector<std::int8_t> values = {1, 2, 3, 4, 5, 6};
  const std::vector<std::int64_t> sizes = {2, 3, 1};
  const std::vector<float> scales = {0.5f, 0.5f, 0.5f}, w = {1, -2, 1}, b = {0, 0, 0}, mean = {0, 0, 0},
                           var = {1, 1, 1};
  const std::vector<std::int64_t> zero_points = {0, 0, 0};
  auto folded = numerics::foldBatchNormIntoScales({values, sizes, 1, scales, zero_points, -127, 127}, std::nullopt,
                                                  {w, b, mean, var, 0.0f});
  const auto& f = std::get<numerics::FoldedScales>(folded);
  EXPECT_EQ(f.values, (std::vector<std::int8_t>{1, -2, 3, 4, -5, 6}));
  EXPECT_EQ(f.negated, (std::vector<std::int64_t>{1}));
  EXPECT_EQ(f.scales, (std::vector<float>{0.5f, 1.0f, 0.5f}));
}

TEST(ScaleFoldNumerics, NoNegativeFactorKeepsTheWeight) {
  const std::vector<std::int8_t> values = {1, 2};
  const std::vector<std::int64_t> sizes = {2, 1};
  const std::vector<float> scales = {0.5f, 0.25f}, w = {2, 4}, b = {1, 1}, mean = {1, 0}, var = {1, 1};
  const std::vector<std::int64_t> zero_points = {3, 0};  // a zero point only matters to negation
  const std::vector<float> bias = {0.5f, 0.5f};
  auto folded = numerics::foldBatchNormIntoScales({values, sizes, 0, scales, zero_points, -128, 127},
                                                  std::span<const float>(bias), {w, b, mean, var, 0.0f});
  const auto& f = std::get<numerics::FoldedScales>(folded);
  EXPECT_TRUE(f.values.empty());
  EXPECT_EQ(f.scales, (std::vector<float>{1.0f, 1.0f}));
  EXPECT_EQ(f.bias, (std::vector<float>{0.0f, 3.0f}));  // (0.5 - 1) * 2 + 1, (0.5 - 0) * 4 + 1
}

TEST(OutputRangeNumerics, ObservedRangeMatchesMinMaxObserver) {
  const numerics::AffineRange int8{1, 0, -128, 127};
  // Values torch.ao.quantization.MinMaxObserver(dtype=torch.qint8) gives.
  numerics::AffineRange r = numerics::observedRange(-1.0f, 3.0f, int8);
  EXPECT_EQ(r.scale, static_cast<double>(4.0f / 255.0f));
  EXPECT_EQ(r.zero_point, -64);
  r = numerics::observedRange(0.5f, 2.0f, int8);  // the range always holds 0
  EXPECT_EQ(r.scale, static_cast<double>(2.0f / 255.0f));
  EXPECT_EQ(r.zero_point, -128);
  r = numerics::observedRange(0.0f, 0.0f, int8);  // never a zero scale
  EXPECT_EQ(r.scale, static_cast<double>(std::numeric_limits<float>::epsilon()));
}

TEST(OutputRangeNumerics, EstimateCoversEveryChannelAndZero) {
  const numerics::AffineRange y{0.1, 0, -128, 127};  // [-12.8, 12.7]
  const std::vector<float> factor = {2.0f, -0.5f}, shift = {1.0f, 30.0f};
  const numerics::AffineRange r = numerics::estimateFoldedRange(y, factor, shift);
  EXPECT_LE(r.low(), 2.0 * -12.8 + 1.0);
  EXPECT_GE(r.high(), -0.5 * -12.8 + 30.0);
  EXPECT_LE(r.low(), 0.0);
}

}  // namespace
}  // namespace qatfold::passes

namespace qatfold::passes {
namespace {

// kQuantizedBatchNorm with one weight scale for both channels, and a
// channel 0 of small weights: one new scale leaves it few steps.
const std::string kPerTensorWeights = testing::edited(
    testing::kQuantizedBatchNorm,
    {{"%w_dq = quantized_decomposed.dequantize_per_channel.default(input=%w_q, scales=%w_s, zero_points=%w_zp, axis=0,",
      "%w_dq = quantized_decomposed.dequantize_per_tensor.default(input=%w_q, scale=0.02, zero_point=0,"},
     {"int8[2, 2, 1, 1] = [100, -20, 10, 127]", "int8[2, 2, 1, 1] = [3, -1, 10, 127]"}});

TEST(FoldBatchNormIntoWeightScales, PerTensorWeightsAreRequantizedOnlyWhenAsked) {
  EXPECT_EQ(testing::foldText(kPerTensorWeights).report.skipped.at(0).code(), "per-tensor-weights");
  FoldOptions options;
  options.per_tensor_weights = PerTensorWeights::kRequantize;
  testing::TextFold f = testing::foldText(kPerTensorWeights, options);
  ASSERT_EQ(f.report.folded.size(), 1u) << qatfold::report::foldReportText(f.report, true);
  // w' = f_c * q * 0.02, one new scale max |w'| / 127, q' = round(w' / s').
  std::vector<float> folded;
  const std::int8_t q[] = {3, -1, 10, 127};
  float largest = 0;
  for (int i = 0; i < 4; ++i) {
    folded.push_back(static_cast<float>(q[i]) * 0.02f * factor(i / 2));
    largest = std::max(largest, std::fabs(folded.back()));
  }
  const float scale = largest / 127.0f;
  std::vector<std::int8_t> expected;
  double error = 0;
  double channel_error[2] = {0, 0}, channel_largest[2] = {0, 0};
  for (int i = 0; i < 4; ++i) {
    const float w = folded[i];
    expected.push_back(static_cast<std::int8_t>(std::nearbyint(w / scale)));
    const double e = std::fabs(static_cast<double>(w) - expected.back() * static_cast<double>(scale));
    error = std::max(error, e);
    channel_error[i / 2] = std::max(channel_error[i / 2], e);
    channel_largest[i / 2] = std::max(channel_largest[i / 2], static_cast<double>(std::fabs(w)));
  }
  const double relative[2] = {channel_error[0] / channel_largest[0], channel_error[1] / channel_largest[1]};
  const std::size_t worst = relative[1] > relative[0] ? 1 : 0;
  const graph::Node* w_dq = node(f, "w_dq");
  EXPECT_EQ(data<std::int8_t>(w_dq->getInput("input")), expected);
  EXPECT_EQ(*w_dq->tryGetArgument("scale")->asFloat(), static_cast<double>(scale));
  EXPECT_EQ(*w_dq->tryGetArgument("zero_point")->asInt(), 0);
  const auto& requantized = *f.report.folded[0].requantized;
  ASSERT_TRUE(requantized.weight_error.has_value());
  const auto& weight_error = *requantized.weight_error;
  EXPECT_NEAR(weight_error.overall, error / largest, 1e-12);
  EXPECT_LE(weight_error.overall, 0.5 / 127 + 1e-9);  // half a step of the new scale at most
  // Channel 0's weights fold to 0.045 and -0.015 against channel 1's 2.54:
  // a quarter step off is a tenth of channel 0, which the overall figure hides.
  EXPECT_EQ(worst, 0u);
  EXPECT_NEAR(weight_error.worst_channel, relative[0], 1e-12);
  EXPECT_GT(weight_error.worst_channel, 0.1);
  EXPECT_EQ(weight_error.channel, 0u);
  EXPECT_LT(weight_error.overall, 0.01);
  EXPECT_NE(qatfold::report::foldReportText(f.report, false).find("re-quantized per-tensor weights: conv: max error"),
            std::string::npos);
  EXPECT_NE(
      qatfold::report::foldReportText(f.report, false).find("of channel " + std::to_string(worst) + "'s own largest"),
      std::string::npos);
}

}  // namespace
}  // namespace qatfold::passes

namespace qatfold::passes {
namespace {

TEST(FoldBatchNormIntoWeightScales, TransposedConvScalesAlongAxisOne) {
  // conv_transpose2d's weight is [in, out, kh, kw]: the output channels and
  // their scales are axis 1, so channel 1's integers are w_q[0][1], w_q[1][1].
  const std::string program = testing::edited(
      testing::kQuantizedBatchNorm,
      {{"zero_points=%w_zp, axis=0,", "zero_points=%w_zp, axis=1,"},
       {"aten.conv2d.default(input=%x_dq, weight=%w_dq, bias=%b)",
        "aten.conv_transpose2d.input(input=%x_dq, weight=%w_dq, bias=%b, stride=[1, 1], padding=[0, 0], "
        "output_padding=[0, 0], groups=1, dilation=[1, 1])"}});
  testing::TextFold f = testing::foldText(program);
  ASSERT_EQ(f.report.folded.size(), 1u) << qatfold::report::foldReportText(f.report, true);
  const graph::Node* w_dq = node(f, "w_dq");
  EXPECT_EQ(data<std::int8_t>(w_dq->getInput("input")), (std::vector<std::int8_t>{100, 20, 10, -127}));
  EXPECT_EQ(data<float>(w_dq->getInput("scales")),
            (std::vector<float>{kScales[0] * std::fabs(factor(0)), kScales[1] * std::fabs(factor(1))}));
}

}  // namespace
}  // namespace qatfold::passes
