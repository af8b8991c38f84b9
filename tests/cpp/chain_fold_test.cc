// The chain fold and the weights fold on text graphs: what each kind of bias
// update writes, checked against the arithmetic done here in double
// precision, and the graph that comes out, as text.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "qatfold/passes/refusal.h"
#include "qatfold/report/fold_report.h"
#include "text_graphs.h"

namespace qatfold::passes {
namespace {

using testing::edited;
using testing::foldText;
using testing::kFloatChain;
using testing::kFloatPlainBatchNorm;
using testing::kPlainBatchNorm;
using testing::kQatChain;
using testing::TextFold;

// The bases' BatchNorm: C_c = (orig_bias_c - mean_c) * bn_w_c / sqrt(var_c + eps) + bn_b_c.
double shift(int c, double eps = 1e-5, bool orig_bias = true) {
  const double bn_w[] = {1.5, 0.5}, bn_b[] = {0.25, -0.25}, orig[] = {0.1, -0.2}, mean[] = {0.5, -0.5},
               var[] = {4, 0.25};
  return ((orig_bias ? orig[c] : 0.0) - mean[c]) * bn_w[c] / std::sqrt(var[c] + eps) + bn_b[c];
}

const graph::Value* value(const TextFold& f, const std::string& name) { return f.loaded.graph->getValue(name); }

std::vector<std::int32_t> int32Data(const graph::Value* v) { return v->payload()->view().values<std::int32_t>(); }
std::vector<float> floatData(const graph::Value* v) { return v->payload()->view().values<float>(); }

TEST(FoldConvBatchNormChain, Int32BiasInPlaceLeavesAPlainQuantizedConv) {
  TextFold f = foldText(kQatChain);
  ASSERT_EQ(f.report.folded.size(), 1u);
  // b_new = b + round(C / s_b): 10 + round(-99.99...) and -20 + round(99.98...).
  const std::vector<std::int32_t> expected = {10 + static_cast<std::int32_t>(std::nearbyint(shift(0) / 0.0005)),
                                              -20 + static_cast<std::int32_t>(std::nearbyint(shift(1) / 0.0005))};
  EXPECT_EQ(expected, (std::vector<std::int32_t>{-90, 80}));
  EXPECT_EQ(int32Data(value(f, "b_q")), expected);
  EXPECT_EQ(f.after(), edited(R"(input %x: float32[1, 2, 4, 4]
buffer %w_q = "_frozen_param0": int8[2, 2, 1, 1] = [1, 2, 3, 4]
buffer %b_q = "_frozen_param1": int32[2] = [-90, 80]
%x_q = quantized_decomposed.quantize_per_tensor.default(input=%x, scale=0.05, zero_point=0, quant_min=-128, quant_max=127, dtype=int8): int8[1, 2, 4, 4]
%x_dq = quantized_decomposed.dequantize_per_tensor.default(input=%x_q, scale=0.05, zero_point=0, quant_min=-128, quant_max=127, dtype=int8): float32[1, 2, 4, 4]
%w_dq = quantized_decomposed.dequantize_per_tensor.default(input=%w_q, scale=0.01, zero_point=0, quant_min=-127, quant_max=127, dtype=int8): float32[2, 2, 1, 1]
%b_dq = quantized_decomposed.dequantize_per_tensor.default(input=%b_q, scale=0.0005, zero_point=0, quant_min=-2147483648, quant_max=2147483647, dtype=int32): float32[2]
%conv = aten.conv2d.default(input=%x_dq, weight=%w_dq, bias=%b_dq): float32[1, 2, 4, 4]
%y_q = quantized_decomposed.quantize_per_tensor.default(input=%conv, scale=0.1, zero_point=0, quant_min=-128, quant_max=127, dtype=int8): int8[1, 2, 4, 4]
%y_dq = quantized_decomposed.dequantize_per_tensor.default(input=%y_q, scale=0.1, zero_point=0, quant_min=-128, quant_max=127, dtype=int8): float32[1, 2, 4, 4]
return %y_dq
)",
                              {}));
  const FoldedConv& chain = f.report.folded[0];
  EXPECT_EQ(chain.folded_by, "FoldConvBatchNormChain");
  EXPECT_EQ(qatfold::report::foldReportJson(f.report)["folded"][0]["folded_by"], "FoldConvBatchNormChain");
  EXPECT_FALSE(chain.copied_bias);
  EXPECT_FALSE(chain.float_bias);
  EXPECT_TRUE(chain.output_quantized);
  EXPECT_EQ(f.report.removed_constants, 5u);  // bn weight, bias, mean, var and orig_bias
}

TEST(FoldConvBatchNormChain, WidenedOutputRangeCoversTheShift) {
  FoldOptions options;
  options.output_range = OutputRange::kWiden;
  TextFold f = foldText(kQatChain, options);
  ASSERT_EQ(f.report.folded.size(), 1u);
  // y's range [-12.8, 12.7] (scale 0.1, int8) stretched by min(0, C) and max(0, C), same 255 steps.
  const double low = -12.8 + std::min({0.0, shift(0), shift(1)});
  const double high = 12.7 + std::max({0.0, shift(0), shift(1)});
  const double scale = (high - low) / 254;  // a spare step lets the integer zero point cover both ends
  const std::int64_t zero_point = -128 - static_cast<std::int64_t>(std::floor(low / scale));
  for (const char* name : {"y_q", "y_dq"}) {
    const graph::Node* node = value(f, name)->producer();
    EXPECT_NEAR(*node->tryGetArgument("scale")->asFloat(), scale, 1e-7 * scale) << name;
    EXPECT_EQ(*node->tryGetArgument("zero_point")->asInt(), zero_point) << name;
    EXPECT_EQ(*node->tryGetArgument("quant_min")->asInt(), -128) << name;
  }
  // The bias is the same as when the range is kept: widening touches only the output quantization.
  EXPECT_EQ(int32Data(value(f, "b_q")), (std::vector<std::int32_t>{-90, 80}));
  const FoldedConv& chain = f.report.folded[0];
  ASSERT_TRUE(chain.widened_output.has_value());
  EXPECT_FALSE(chain.flagged);
  EXPECT_DOUBLE_EQ(chain.risk.range_low, -12.8);  // the calibrated range stays in the risk figures
  const Json json = qatfold::report::foldReportJson(f.report)["folded"][0]["widened_output"];
  EXPECT_EQ(json["zero_point"], zero_point);
  EXPECT_NEAR(json["range"][0].get<double>(), (-128 - zero_point) * scale, 1e-6);
  EXPECT_NEAR(json["range"][1].get<double>(), (127 - zero_point) * scale, 1e-6);
  EXPECT_LE(json["range"][0].get<double>(), low);
  EXPECT_GE(json["range"][1].get<double>(), high);
  EXPECT_NE(qatfold::report::foldReportText(f.report, false).find("widened output range: conv: [-12.8, 12.7] -> ["),
            std::string::npos)
      << qatfold::report::foldReportText(f.report, false);
  // Kept (the default), the pair is untouched and the report has no widened range.
  TextFold kept = foldText(kQatChain);
  EXPECT_EQ(*value(kept, "y_q")->producer()->tryGetArgument("scale")->asFloat(), 0.1);
  EXPECT_FALSE(kept.report.folded[0].widened_output.has_value());
  EXPECT_TRUE(qatfold::report::foldReportJson(kept.report)["folded"][0]["widened_output"].is_null());
}

TEST(FoldConvBatchNormChain, SharedInt32BiasIsCopied) {
  // The bias is also a graph output: writing it in place would change that output.
  TextFold f = foldText(edited(kQatChain, {{"return %bn", "return %bn, %b_q"}}));
  ASSERT_EQ(f.report.folded.size(), 1u);
  EXPECT_TRUE(f.report.folded[0].copied_bias);
  EXPECT_EQ(int32Data(value(f, "b_q")), (std::vector<std::int32_t>{10, -20}));
  const graph::Value* own = value(f, "conv")->producer()->getInput("bias")->producer()->getInput("input");
  EXPECT_NE(own, value(f, "b_q"));
  EXPECT_EQ(int32Data(own), (std::vector<std::int32_t>{-90, 80}));
}

TEST(FoldConvBatchNormChain, ConvWithoutBiasGetsThePreparedOneShifted) {
  TextFold f = foldText(
      edited(kQatChain, {{"bias=%b_dq)", "bias=None)"},
                         {"%biased = aten.add.Tensor(self=%unscaled, other=%orig_r): float32[1, 2, 4, 4]\n", ""},
                         {"batch_norm.default(input=%biased", "batch_norm.default(input=%unscaled"}}));
  ASSERT_EQ(f.report.folded.size(), 1u);
  ASSERT_EQ(f.report.prepared_biases.size(), 1u);
  EXPECT_EQ(f.report.prepared_biases[0].conv, "conv");
  // s_b = s_in * s_w; a zero bias plus C, no orig_bias.
  const double s_b = 0.05 * 0.01;
  const graph::Node* bias_dq = value(f, "conv")->producer()->getInput("bias")->producer();
  EXPECT_EQ(int32Data(bias_dq->getInput("input")),
            (std::vector<std::int32_t>{static_cast<std::int32_t>(std::nearbyint(shift(0, 1e-5, false) / s_b)),
                                       static_cast<std::int32_t>(std::nearbyint(shift(1, 1e-5, false) / s_b))}));
}

// Samsung's quantizer gives the conv under a chain zeros_like(bias): a
// constant expression of zeros, folded as a missing bias (plus orig_bias).
TEST(FoldConvBatchNormChain, ZerosLikeBiasIsAZeroBias) {
  TextFold f = foldText(
      edited(kQatChain, {{"%var_eps =", "%zeros = aten.zeros_like.default(self=%orig_b): float32[2]\n%var_eps ="},
                         {"bias=%b_dq)", "bias=%zeros)"}}));
  ASSERT_EQ(f.report.folded.size(), 1u) << qatfold::report::foldReportText(f.report, true);
  ASSERT_EQ(f.report.prepared_biases.size(), 1u);
  EXPECT_EQ(f.report.prepared_biases[0].action, "added a zero int32 bias");
  const double s_b = 0.05 * 0.01;
  const graph::Node* bias_dq = value(f, "conv")->producer()->getInput("bias")->producer();
  EXPECT_EQ(int32Data(bias_dq->getInput("input")),
            (std::vector<std::int32_t>{static_cast<std::int32_t>(std::nearbyint(shift(0) / s_b)),
                                       static_cast<std::int32_t>(std::nearbyint(shift(1) / s_b))}));
  EXPECT_EQ(f.loaded.graph->tryGetValue("zeros"), nullptr);  // dead once the conv reads the int32 bias
}

TEST(FoldConvBatchNormChain, QuantizedConvWithoutOutputQuantizationFoldsIntoInt32) {
  // A quantizer that annotates conv + BN as one unit puts no q/dq between
  // them: NXP's NeutronQuantizer in QAT ("there should be no quantization
  // between convolution node and batch norm node"; its conv bias int32,
  // derived from the input and weight scales).
  TextFold f =
      foldText(edited(kQatChain, {{"div.Tensor(self=%y_dq", "div.Tensor(self=%conv"},
                                  {"%y_q = quantized_decomposed.quantize_per_tensor.default(input=%conv, scale=0.1, "
                                   "zero_point=0, quant_min=-128, quant_max=127, dtype=int8): int8[1, 2, 4, 4]\n",
                                   ""},
                                  {"%y_dq = quantized_decomposed.dequantize_per_tensor.default(input=%y_q, scale=0.1, "
                                   "zero_point=0, quant_min=-128, quant_max=127, dtype=int8): float32[1, 2, 4, 4]\n",
                                   ""}}));
  ASSERT_EQ(f.report.folded.size(), 1u);
  EXPECT_FALSE(f.report.folded[0].output_quantized);
  EXPECT_FALSE(f.report.folded[0].float_bias);
  EXPECT_TRUE(qatfold::report::foldReportJson(f.report)["folded"][0]["relative_shift"].is_null());
  EXPECT_EQ(f.loaded.graph->outputs()[0]->name(), "conv");
}

TEST(FoldConvBatchNormChain, ClampsAndCountsBiasElementsBeyondInt32) {
  TextFold f = foldText(edited(kQatChain, {{"input=%b_q, scale=0.0005", "input=%b_q, scale=1e-12"}}));
  ASSERT_EQ(f.report.folded.size(), 1u);
  EXPECT_EQ(f.report.folded[0].clamped_bias_elements, 2u);
  EXPECT_EQ(int32Data(value(f, "b_q")), (std::vector<std::int32_t>{INT32_MIN, INT32_MAX}));
  EXPECT_NE(qatfold::report::foldReportText(f.report, false).find("clamped 2"), std::string::npos);
}

TEST(FoldConvBatchNormChain, EpsMismatchWithinToleranceFoldsAndSaysSo) {
  // r_c = sqrt(var_c + 0.01) / sqrt(var_c + 1e-5): at most 1.0198 (var 0.25).
  const std::string program =
      edited(kQatChain, {{"add.Tensor(self=%var, other=1e-05)", "add.Tensor(self=%var, other=0.01)"}});
  TextFold refused = foldText(program);
  ASSERT_EQ(refused.report.skipped.size(), 1u);
  EXPECT_EQ(refused.report.skipped[0].code(), "eps-mismatch-per-tensor");
  EXPECT_NE(
      qatfold::report::foldReportText(refused.report, false, OptionStyle::kCli).find("(raise it with --eps-tolerance)"),
      std::string::npos);
  EXPECT_NE(qatfold::report::foldReportText(refused.report, false).find("(raise it with eps_tolerance=)"),
            std::string::npos);

  FoldOptions tolerant;
  tolerant.eps_tolerance = 0.05;
  TextFold f = foldText(program, tolerant);
  ASSERT_EQ(f.report.folded.size(), 1u);
  const auto& mismatch = f.report.folded[0].eps_mismatch;
  ASSERT_TRUE(mismatch.has_value());
  EXPECT_FALSE(mismatch->in_weight_scales);
  EXPECT_NEAR(mismatch->factor_max, std::sqrt(0.26) / std::sqrt(0.25001), 1e-6);
  EXPECT_NEAR(mismatch->factor_min, std::sqrt(4.01) / std::sqrt(4.00001), 1e-6);
  EXPECT_NE(qatfold::report::foldReportText(f.report, false).find("ignored (within eps_tolerance=)"),
            std::string::npos);
}

// kQatChain's weight and bias dequantized per channel by the buffers %w_s,
// %b_s and %zp, which `buffers` (put before %mean) must declare.
std::string perChannelChain(const std::string& buffers,
                            std::vector<std::pair<std::string, std::string>> more_edits = {}) {
  std::vector<std::pair<std::string, std::string>> edits = {
      {"buffer %mean", buffers + "buffer %mean"},
      {"%w_dq = quantized_decomposed.dequantize_per_tensor.default(input=%w_q, scale=0.01, zero_point=0,",
       "%w_dq = quantized_decomposed.dequantize_per_channel.default(input=%w_q, scales=%w_s, zero_points=%zp, axis=0,"},
      {"%b_dq = quantized_decomposed.dequantize_per_tensor.default(input=%b_q, scale=0.0005, zero_point=0,",
       "%b_dq = quantized_decomposed.dequantize_per_channel.default(input=%b_q, scales=%b_s, zero_points=%zp, "
       "axis=0,"}};
  edits.insert(edits.end(), more_edits.begin(), more_edits.end());
  return edited(kQatChain, edits);
}

const std::string kPerChannelBuffers =
    "buffer %w_s = \"w_s\": float32[2] = [0.01, 0.02]\nbuffer %b_s = \"b_s\": float32[2] = [0.0005, 0.001]\n"
    "buffer %zp = \"zp\": int64[2] = fill(0)\n";

TEST(FoldConvBatchNormChain, PerChannelWeightsTakeTheEpsFactorIntoTheirScales) {
  const std::string per_channel = perChannelChain(
      kPerChannelBuffers, {{"add.Tensor(self=%var, other=1e-05)", "add.Tensor(self=%var, other=0.01)"}});
  TextFold f = foldText(per_channel);
  ASSERT_EQ(f.report.folded.size(), 1u) << qatfold::report::foldReportText(f.report, true);
  ASSERT_TRUE(f.report.folded[0].eps_mismatch.has_value());
  EXPECT_TRUE(f.report.folded[0].eps_mismatch->in_weight_scales);
  const double r[] = {std::sqrt(4.01) / std::sqrt(4.00001), std::sqrt(0.26) / std::sqrt(0.25001)};
  const std::vector<float> weight_scales = floatData(value(f, "w_s"));
  const std::vector<float> bias_scales = floatData(value(f, "b_dq")->producer()->getInput("scales"));
  for (int c = 0; c < 2; ++c) {
    EXPECT_NEAR(weight_scales[c], (c == 0 ? 0.01 : 0.02) * r[c], 1e-8);
    EXPECT_NEAR(bias_scales[c], (c == 0 ? 0.0005 : 0.001) * r[c], 1e-9);
  }
  // The zero points are shared by both dequantizes and stay as they are.
  EXPECT_NE(value(f, "zp"), nullptr);
}

// Arm's chain: the batch_norm reads dequantized copies of its weight and
// running_var (and bias, mean), the divisor the float ones; with per-channel
// weights the factor r = (w'/sqrt(v'+eps)) / (w/sqrt(v+eps)) goes into the
// weight and bias scales, and C is computed from the dequantized values.
TEST(FoldConvBatchNormChain, BatchNormReadingDequantizedParametersFoldsItsFactorIntoTheScales) {
  const std::string arm = perChannelChain(
      kPerChannelBuffers +
          "buffer %bn_w_q = \"bn_w_q\": int8[2] = [127, 42]\nbuffer %var_q = \"var_q\": int8[2] = [100, 6]\n",
      {{"%bn = aten.batch_norm.default(input=%biased, weight=%bn_w, bias=%bn_b, running_mean=%mean, "
        "running_var=%var,",
        "%bn_w_dq = quantized_decomposed.dequantize_per_tensor.default(input=%bn_w_q, scale=0.0118, "
        "zero_point=0, quant_min=-128, quant_max=127, dtype=int8): float32[2]\n"
        "%var_dq = quantized_decomposed.dequantize_per_tensor.default(input=%var_q, scale=0.04, zero_point=0, "
        "quant_min=-128, quant_max=127, dtype=int8): float32[2]\n"
        "%bn = aten.batch_norm.default(input=%biased, weight=%bn_w_dq, bias=%bn_b, running_mean=%mean, "
        "running_var=%var_dq,"}});
  TextFold f = foldText(arm);
  ASSERT_EQ(f.report.folded.size(), 1u) << qatfold::report::foldReportText(f.report, true);
  ASSERT_TRUE(f.report.folded[0].eps_mismatch.has_value());
  EXPECT_TRUE(f.report.folded[0].eps_mismatch->dequantized_parameters);
  EXPECT_TRUE(f.report.folded[0].eps_mismatch->in_weight_scales);
  const double bn_w[] = {127 * 0.0118, 42 * 0.0118}, var[] = {100 * 0.04, 6 * 0.04};  // what the BN reads
  const double float_w[] = {1.5, 0.5}, float_var[] = {4, 0.25};                       // what the divisor reads
  const std::vector<float> weight_scales = floatData(value(f, "w_s"));
  const std::vector<float> bias_scales = floatData(value(f, "b_dq")->producer()->getInput("scales"));
  const std::vector<std::int32_t> bias = int32Data(value(f, "b_dq")->producer()->getInput("input"));
  const double orig[] = {0.1, -0.2}, mean[] = {0.5, -0.5}, bn_b[] = {0.25, -0.25}, old_bias[] = {10, -20};
  for (int c = 0; c < 2; ++c) {
    const double g = bn_w[c] / std::sqrt(var[c] + 1e-5);
    const double r = g / (float_w[c] / std::sqrt(float_var[c] + 1e-5));
    EXPECT_NEAR(weight_scales[c], (c == 0 ? 0.01 : 0.02) * r, 1e-8);
    EXPECT_NEAR(bias_scales[c], (c == 0 ? 0.0005 : 0.001) * r, 1e-9);
    const double shift = (orig[c] - mean[c]) * g + bn_b[c];
    EXPECT_NEAR(bias[c], old_bias[c] + shift / bias_scales[c], 0.5 + 1e-6) << c;
  }
  EXPECT_NE(qatfold::report::foldReportText(f.report, false).find("batch_norm reads dequantized parameters"),
            std::string::npos);
}

// Qualcomm's chain: per-tensor weights, a batch_norm weight dequantized from
// 8 bits. Asked to (per_tensor_weights = requantize), the weight is
// re-quantized with r and the int32 bias re-derived on s_in * s'.
TEST(FoldConvBatchNormChain, PerTensorWeightsAreRequantizedWithTheFactorWhenAsked) {
  const std::string qualcomm =
      edited(kQatChain, {{"buffer %mean", "buffer %bn_w_q = \"bn_w_q\": int8[2] = [100, 50]\nbuffer %mean"},
                         {"%bn = aten.batch_norm.default(input=%biased, weight=%bn_w,",
                          "%bn_w_dq = quantized_decomposed.dequantize_per_tensor.default(input=%bn_w_q, scale=0.0149, "
                          "zero_point=0, quant_min=-128, quant_max=127, dtype=int8): float32[2]\n"
                          "%bn = aten.batch_norm.default(input=%biased, weight=%bn_w_dq,"}});
  ASSERT_EQ(foldText(qualcomm).report.skipped.at(0).code(), "parameter-factor-per-tensor");
  FoldOptions options;
  options.per_tensor_weights = PerTensorWeights::kRequantize;
  TextFold f = foldText(qualcomm, options);
  ASSERT_EQ(f.report.folded.size(), 1u) << qatfold::report::foldReportText(f.report, true);
  const auto& mismatch = *f.report.folded[0].eps_mismatch;
  ASSERT_TRUE(mismatch.requantized_weights.has_value());
  // r_c = (1.49 or 0.745) / (1.5 or 0.5): w' = r_c * w, one new scale max|w'| / 127.
  const double r[] = {1.49 / 1.5, 0.745 / 0.5};
  const double w[] = {1, 2, 3, 4};  // [2, 2, 1, 1], channel = index / 2, scale 0.01
  double largest = 0;
  for (int i = 0; i < 4; ++i) largest = std::max(largest, std::fabs(w[i] * 0.01 * r[i / 2]));
  const graph::Node* w_dq = value(f, "w_dq")->producer();
  const double scale = *w_dq->tryGetArgument("scale")->asFloat();
  EXPECT_NEAR(scale, largest / 127, 1e-9);
  const std::vector<std::int8_t> q = w_dq->getInput("input")->payload()->view().values<std::int8_t>();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(q[i], std::nearbyint(w[i] * 0.01 * r[i / 2] / scale)) << i;
  const graph::Node* b_dq = value(f, "b_dq")->producer();
  const double bias_scale = *b_dq->tryGetArgument("scale")->asFloat();
  EXPECT_NEAR(bias_scale, 0.05 * scale, 1e-12);
  const std::vector<std::int32_t> bias = int32Data(b_dq->getInput("input"));
  const double old_bias[] = {10 * 0.0005, -20 * 0.0005}, bn_w[] = {1.49, 0.745};
  const double orig[] = {0.1, -0.2}, mean[] = {0.5, -0.5}, var[] = {4, 0.25}, bn_b[] = {0.25, -0.25};
  for (int c = 0; c < 2; ++c) {
    const double shift = (orig[c] - mean[c]) * bn_w[c] / std::sqrt(var[c] + 1e-5) + bn_b[c];
    EXPECT_NEAR(bias[c], (old_bias[c] * r[c] + shift) / bias_scale, 0.5 + 1e-3) << c;
  }
}

TEST(FoldConvBatchNormChain, UnquantizedConvTakesAFloatBias) {
  TextFold f = foldText(kFloatChain);
  ASSERT_EQ(f.report.folded.size(), 1u);
  EXPECT_TRUE(f.report.folded[0].float_bias);
  EXPECT_TRUE(f.report.prepared_biases.empty());
  const graph::Value* bias = value(f, "conv")->producer()->getInput("bias");
  EXPECT_EQ(bias->target(), "conv.folded_bias");  // named after the conv: a text graph has no module path
  const std::vector<float> got = floatData(bias);
  EXPECT_NEAR(got[0], 0.5 + shift(0), 1e-6);
  EXPECT_NEAR(got[1], 0.25 + shift(1), 1e-6);
  EXPECT_EQ(f.loaded.graph->outputs()[0]->name(), "conv");
}

TEST(FoldConvBatchNormChain, FloatChainWithEpsMismatchKeepsItsOwnReason) {
  // The issue's case: an unquantized conv whose scale chain's eps differs.
  // The report names that, not some other pattern's "no int32 bias".
  TextFold f =
      foldText(edited(kFloatChain, {{"add.Tensor(self=%var, other=1e-05)", "add.Tensor(self=%var, other=0.01)"}}));
  ASSERT_EQ(f.report.skipped.size(), 1u);
  EXPECT_EQ(f.report.skipped[0].code(), "eps-mismatch-float");
  EXPECT_EQ(f.report.skipped[0].reason(),
            "the scale chain's eps 0.01 differs from batch_norm's eps 1e-05 (folded only for quantized convs)");
  EXPECT_TRUE(f.report.skipped[0].qatChain());
  EXPECT_NE(qatfold::report::foldReportText(f.report, false).find("not folded: bn: the scale chain's eps 0.01"),
            std::string::npos);
}

TEST(FoldBatchNormIntoWeights, PlainBatchNormScalesTheFloatWeights) {
  TextFold f = foldText(kPlainBatchNorm);
  ASSERT_EQ(f.report.folded.size(), 1u);
  EXPECT_TRUE(f.report.folded[0].scaled_weights);
  EXPECT_EQ(f.report.folded[0].folded_by, "FoldBatchNormIntoWeights");
  const graph::Node* conv = value(f, "conv")->producer();
  const std::vector<float> weight = floatData(conv->getInput("weight"));
  const std::vector<float> bias = floatData(conv->getInput("bias"));
  const double scale[] = {1.5 / std::sqrt(4.00001), 0.5 / std::sqrt(0.25001)};
  EXPECT_NEAR(weight[0], 1 * scale[0], 1e-6);
  EXPECT_NEAR(weight[3], 1 * scale[1], 1e-6);
  EXPECT_NEAR(bias[0], (0.5 - 0.5) * scale[0] + 0.25, 1e-6);
  EXPECT_NEAR(bias[1], (0.25 + 0.5) * scale[1] - 0.25, 1e-6);
}

TEST(FoldBatchNormIntoWeights, LeavesFloatProgramsAlone) {
  // The same conv + batch_norm without any quantize/dequantize: not a quantized program.
  TextFold f = foldText(kFloatPlainBatchNorm);
  EXPECT_TRUE(f.report.folded.empty());
  EXPECT_EQ(f.after(), f.before);
  ASSERT_EQ(f.report.skipped.size(), 1u);
  EXPECT_EQ(f.report.skipped[0].code(), "not-quantized");
}

}  // namespace
}  // namespace qatfold::passes
