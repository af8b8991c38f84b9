// One named negative case per refusal code (passes/refusal.h), each a text
// graph that differs from a foldable base in the one thing the code is about.
// Every case checks that the batch_norm is kept with exactly that code and
// that the program comes out unchanged. A new code without a case fails
// EveryCodeHasANamedNegativeCase.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "qatfold/passes/batch_norm_tail.h"
#include "qatfold/passes/fold_batch_norm_into_weights.h"
#include "qatfold/passes/refusal.h"
#include "qatfold/report/fold_report.h"
#include "text_graphs.h"

namespace qatfold::passes {
namespace {

using testing::edited;
using testing::kFloatChain;
using testing::kFloatPlainBatchNorm;
using testing::kPlainBatchNorm;
using testing::kQatChain;
using testing::kQuantizedBatchNorm;

struct RefusalCase {
  std::string name;
  RefusalCode code;
  std::string program;
  FoldOptions options = {};
  // The code another pattern's refusal outranks in the report, checked on
  // the pattern that gives it (FoldBatchNormIntoWeights) directly.
  bool weights_pattern_only = false;
};

// The batch_norm of kQatChain, for cases that replace it whole.
const std::string kBatchNormLine =
    "%bn = aten.batch_norm.default(input=%biased, weight=%bn_w, bias=%bn_b, running_mean=%mean, running_var=%var, "
    "training=False, momentum=0.1, eps=1e-05, cudnn_enabled=False): float32[1, 2, 4, 4]";
const std::string kNoTrainingArgs =
    "(input=%biased, weight=%bn_w, bias=%bn_b, running_mean=%mean, running_var=%var, momentum=0.1, eps=1e-05)";

// kQatChain with its int32 bias dequantized per channel by buffers of the
// given types; `before` goes before the dequantize, which reads `scales`.
std::string perChannelBias(const std::string& scales_type, const std::string& zero_points_type,
                           const std::string& before = "", const std::string& scales = "%b_s") {
  return edited(kQatChain,
                {{"buffer %mean", "buffer %b_s = \"b_s\": " + scales_type +
                                      "\nbuffer %b_zp = \"b_zp\": " + zero_points_type + "\nbuffer %mean"},
                 {"%b_dq = quantized_decomposed.dequantize_per_tensor.default(input=%b_q, scale=0.0005, zero_point=0,",
                  before + "%b_dq = quantized_decomposed.dequantize_per_channel.default(input=%b_q, scales=" + scales +
                      ", zero_points=%b_zp, axis=0,"}});
}

FoldOptions requantizePerTensorWeights() {
  FoldOptions options;
  options.per_tensor_weights = PerTensorWeights::kRequantize;
  return options;
}

FoldOptions keepQuantizedBatchNorms() {
  FoldOptions options;
  options.quantized_batch_norm = QuantizedBatchNorm::kKeep;
  return options;
}

std::vector<RefusalCase> refusalCases() {
  using C = RefusalCode;
  return {
      // ---- the batch_norm itself ----
      {"TrainingMode", C::kTrainingMode, edited(kQatChain, {{"training=False", "training=True"}})},
      {"NoTrainingFormWithTwoOutputs", C::kUnexpectedOutputs,
       edited(kQatChain, {{kBatchNormLine, "%bn, %saved = aten._native_batch_norm_legit_no_training.default" +
                                               kNoTrainingArgs + ": float32[1, 2, 4, 4], float32[0]"}})},
      {"BatchNormWithoutOutputs", C::kNoOutput,
       edited(kQatChain, {{kBatchNormLine,
                           "() = aten.batch_norm.default(input=%biased, weight=%bn_w, bias=%bn_b, "
                           "running_mean=%mean, running_var=%var, training=False, momentum=0.1, "
                           "eps=1e-05, cudnn_enabled=False) @bn"},
                          {"return %bn", "return %biased"}})},
      {"SavedStatisticsAreRead", C::kStatisticsUsed,
       edited(kQatChain, {{kBatchNormLine,
                           "%bn, %saved_mean, %saved_invstd = "
                           "aten._native_batch_norm_legit_no_training.default" +
                               kNoTrainingArgs + ": float32[1, 2, 4, 4], float32[2], float32[2]"},
                          {"return %bn", "return %bn, %saved_mean"}})},
      {"EpsIsNotAConstant", C::kEpsNotConstant, edited(kQatChain, {{"eps=1e-05, cudnn", "eps=None, cudnn"}})},
      {"InputIsAGraphInput", C::kInputNotComputed,
       edited(kQatChain, {{"batch_norm.default(input=%biased", "batch_norm.default(input=%x"}})},
      // ---- its parameters ----
      {"RunningMeanIsComputed", C::kParameterNotConstant,
       edited(kQatChain, {{"%var_eps =", "%mean2 = aten.mul.Tensor(self=%mean, other=1.0): float32[2]\n%var_eps ="},
                          {"running_mean=%mean,", "running_mean=%mean2,"}})},
      {"RunningMeanIsFloat64", C::kParameterDtype,
       edited(kQatChain, {{"\"bn.running_mean\": float32[2]", "\"bn.running_mean\": float64[2]"}})},
      {"RunningMeanHasThreeChannels", C::kParameterLength,
       edited(kQatChain,
              {{"\"bn.running_mean\": float32[2] = [0.5, -0.5]", "\"bn.running_mean\": float32[3] = [0.5, -0.5, 0]"}})},
      {"NegativeVariance", C::kVarianceNotPositive,
       edited(kQatChain, {{"float32[2] = [4, 0.25]", "float32[2] = [-4, 0.25]"}})},
      // ---- the tail: div, [add], batch_norm ----
      {"BatchNormAfterARelu", C::kNotAChain,
       edited(kPlainBatchNorm, {{"%bn =", "%relu = aten.relu.default(self=%conv): float32[1, 2, 4, 4]\n%bn ="},
                                {"batch_norm.default(input=%conv", "batch_norm.default(input=%relu"}})},
      {"BatchNormAfterAReluInAFloatProgram", C::kNotQuantized,
       edited(kFloatPlainBatchNorm, {{"%bn =", "%relu = aten.relu.default(self=%conv): float32[1, 2, 4, 4]\n%bn ="},
                                     {"batch_norm.default(input=%conv", "batch_norm.default(input=%relu"}})},
      {"AddWithoutDiv", C::kAddWithoutDiv,
       edited(kFloatChain, {{"add.Tensor(self=%unscaled", "add.Tensor(self=%conv"}})},
      {"OrigBiasAddWithAlpha", C::kOrigBiasAlpha, edited(kQatChain, {{"other=%orig_r)", "other=%orig_r, alpha=2)"}})},
      {"OrigBiasNotReshaped", C::kOrigBiasNotReshape, edited(kQatChain, {{"other=%orig_r)", "other=%orig_b)"}})},
      {"DivOfAScalar", C::kNothingDivided, edited(kQatChain, {{"div.Tensor(self=%y_dq", "div.Tensor(self=2.0"}})},
      {"DivisorNotReshaped", C::kDivisorNotReshape, edited(kQatChain, {{"other=%scale_r)", "other=%scale)"}})},
      {"DivisorIsTheWeightAlone", C::kDivisorNotScale,
       edited(kQatChain, {{"reshape.default(self=%scale,", "reshape.default(self=%bn_w,"}})},
      {"DivisorFromTheRunningMean", C::kNonFiniteEpsFactor,
       edited(kQatChain, {{"add.Tensor(self=%var, other=1e-05)", "add.Tensor(self=%mean, other=1e-05)"}})},
      {"ChainEpsIsATensor", C::kChainEpsNotConstant,
       edited(kQatChain, {{"add.Tensor(self=%var, other=1e-05)", "add.Tensor(self=%var, other=%var)"}})},
      {"DequantizedOutputIsAlsoAGraphOutput", C::kUsedOutsideChain,
       edited(kQatChain, {{"return %bn", "return %bn, %y_dq"}})},
      {"DivisorBroadcastAlongWidth", C::kDivisorNotPerChannel,
       edited(kQatChain, {{"self=%scale, shape=[1, -1, 1, 1]", "self=%scale, shape=[1, 1, 1, 2]"}})},
      {"OrigBiasBroadcastAlongBatch", C::kOrigBiasNotPerChannel,
       edited(kQatChain, {{"self=%orig_b, shape=[1, -1, 1, 1]", "self=%orig_b, shape=[2, 1, 1, 1]"}})},
      {"InfiniteBatchNormBias", C::kNonFiniteShift, edited(kQatChain, {{"[0.25, -0.25]", "[inf, -0.25]"}})},
      {"ChainEpsOverflowsFloat32", C::kNonFiniteEpsFactor,
       edited(kQatChain, {{"add.Tensor(self=%var, other=1e-05)", "add.Tensor(self=%var, other=1e+39)"}})},
      // ---- what precedes the tail ----
      {"DividedValueIsARelu", C::kNoOutputDequantize,
       edited(kQatChain, {{"%scale_r =", "%relu = aten.relu.default(self=%y_dq): float32[1, 2, 4, 4]\n%scale_r ="},
                          {"div.Tensor(self=%y_dq", "div.Tensor(self=%relu"}})},
      {"DequantizeOfAConstant", C::kNoOutputQuantize,
       edited(kQatChain, {{"dequantize_per_tensor.default(input=%y_q,", "dequantize_per_tensor.default(input=%w_q,"}})},
      {"QuantizeDequantizeDisagree", C::kOutputQuantizationMismatch,
       edited(kQatChain, {{"dequantize_per_tensor.default(input=%y_q, scale=0.1",
                           "dequantize_per_tensor.default(input=%y_q, scale=0.2"}})},
      {"QuantizedValueIsNotAConv", C::kNotConvOutput,
       edited(kQatChain, {{"quantize_per_tensor.default(input=%conv,", "quantize_per_tensor.default(input=%x_dq,"}})},
      {"ConvOutputHasNoDimensions", C::kOutputShapeUnknown,
       edited(kQatChain, {{"bias=%b_dq): float32[1, 2, 4, 4]", "bias=%b_dq): float32[]"}})},
      {"ComputedFloatBiasCannotBeQuantized", C::kBiasNotPreparable,
       edited(kQatChain, {{"%var_eps =", "%b_f = aten.mul.Tensor(self=%orig_b, other=1.0): float32[2]\n%var_eps ="},
                          {"bias=%b_dq)", "bias=%b_f)"}})},
      {"Int32BiasIsComputed", C::kBiasNotInt32Constant,
       edited(kQatChain, {{"%b_dq =", "%b_c = aten.clone.default(self=%b_q): int32[2]\n%b_dq ="},
                          {"dequantize_per_tensor.default(input=%b_q,", "dequantize_per_tensor.default(input=%b_c,"}})},
      {"PerChannelBiasScalesComputed", C::kBiasScalesNotConstant,
       perChannelBias("float32[2] = [0.0005, 0.0005]", "int64[2] = fill(0)",
                      "%b_s2 = aten.mul.Tensor(self=%b_s, other=1.0): float32[2]\n", "%b_s2")},
      {"PerChannelBiasScalesFloat64", C::kBiasScalesShape,
       perChannelBias("float64[2] = [0.0005, 0.0005]", "int64[2] = fill(0)")},
      {"PerChannelBiasZeroPointsTooMany", C::kBiasZeroPointsShape,
       perChannelBias("float32[2] = [0.0005, 0.0005]", "int64[3] = fill(0)")},
      {"ZeroBiasScale", C::kBiasScaleNotPositive,
       edited(kQatChain, {{"input=%b_q, scale=0.0005", "input=%b_q, scale=0.0"}})},
      {"ChainEpsDiffersWithPerTensorWeights", C::kEpsMismatchPerTensor,
       edited(kQatChain, {{"add.Tensor(self=%var, other=1e-05)", "add.Tensor(self=%var, other=0.01)"}})},
      {"DequantizedBatchNormWeightWithPerTensorWeights", C::kParameterFactorPerTensor,
       edited(
           kQatChain,
           {{"buffer %mean", "buffer %bn_w_q = \"bn_w_q\": int8[2] = [100, 50]\nbuffer %mean"},
            {"%bn = aten.batch_norm.default(input=%biased, weight=%bn_w,",
             "%bn_w_dq = quantized_decomposed.dequantize_per_tensor.default(input=%bn_w_q, scale=0.01, zero_point=0, "
             "quant_min=-128, quant_max=127, dtype=int8): float32[2]\n"
             "%bn = aten.batch_norm.default(input=%biased, weight=%bn_w_dq,"}})},
      {"RequantizingWeightsWithAPerChannelBias", C::kWeightNotRequantizable,
       edited(
           perChannelBias("float32[2] = [0.0005, 0.0005]", "int64[2] = fill(0)"),
           {{"buffer %mean", "buffer %bn_w_q = \"bn_w_q\": int8[2] = [100, 50]\nbuffer %mean"},
            {"%bn = aten.batch_norm.default(input=%biased, weight=%bn_w,",
             "%bn_w_dq = quantized_decomposed.dequantize_per_tensor.default(input=%bn_w_q, scale=0.01, zero_point=0, "
             "quant_min=-128, quant_max=127, dtype=int8): float32[2]\n"
             "%bn = aten.batch_norm.default(input=%biased, weight=%bn_w_dq,"}}),
       requantizePerTensorWeights()},
      {"FloatConvWithAnInt8Bias", C::kQuantizedBiasUnquantizedOutput,
       edited(kFloatChain, {{"buffer %mean", "buffer %b8 = \"b8\": int8[2] = [3, -3]\nbuffer %mean"},
                            {"%conv =",
                             "%b8_dq = quantized_decomposed.dequantize_per_tensor.default(input=%b8, scale=0.1, "
                             "zero_point=0, quant_min=-128, quant_max=127, dtype=int8): float32[2]\n%conv ="},
                            {"bias=%b0)", "bias=%b8_dq)"}})},
      {"FloatConvBiasIsComputed", C::kFloatBiasNotConstant,
       edited(kFloatChain, {{"%var_eps =", "%b1 = aten.mul.Tensor(self=%b0, other=1.0): float32[2]\n%var_eps ="},
                            {"bias=%b0)", "bias=%b1)"}})},
      {"FloatConvBiasHasThreeChannels", C::kFloatBiasShape,
       edited(kFloatChain, {{"\"conv.b0\": float32[2] = [0.5, 0.25]", "\"conv.b0\": float32[3] = [0.5, 0.25, 0]"}})},
      {"FloatConvChannelsAreSymbolic", C::kChannelsSymbolic,
       edited(kFloatChain, {{"bias=%b0): float32[1, 2, 4, 4]", "bias=%b0): float32[1, c, 4, 4]"}})},
      {"FloatChainEpsDiffers", C::kEpsMismatchFloat,
       edited(kFloatChain, {{"add.Tensor(self=%var, other=1e-05)", "add.Tensor(self=%var, other=0.01)"}})},
      // ---- a plain batch_norm after a conv or linear ----
      {"PlainBatchNormAfterARelu",
       C::kNotAfterConv,
       edited(kPlainBatchNorm, {{"%bn =", "%relu = aten.relu.default(self=%conv): float32[1, 2, 4, 4]\n%bn ="},
                                {"batch_norm.default(input=%conv", "batch_norm.default(input=%relu"}}),
       {},
       true},
      {"BatchNormAfterTheOutputQuantization", C::kPerTensorWeights,
       edited(kPlainBatchNorm,
              {{"buffer %mean", "buffer %w_q = \"w_q\": int8[2, 2, 1, 1] = [1, 0, 0, 1]\nbuffer %mean"},
               {"%conv = aten.conv2d.default(input=%x_dq, weight=%w, bias=%b): float32[1, 2, 4, 4]",
                "%w_dq = quantized_decomposed.dequantize_per_tensor.default(input=%w_q, scale=0.01, zero_point=0, "
                "quant_min=-127, quant_max=127, dtype=int8): float32[2, 2, 1, 1]\n"
                "%conv = aten.conv2d.default(input=%x_dq, weight=%w_dq, bias=%b): float32[1, 2, 4, 4]\n"
                "%y_q = quantized_decomposed.quantize_per_tensor.default(input=%conv, scale=0.1, zero_point=0, "
                "quant_min=-128, quant_max=127, dtype=int8): int8[1, 2, 4, 4]\n"
                "%y_dq = quantized_decomposed.dequantize_per_tensor.default(input=%y_q, scale=0.1, zero_point=0, "
                "quant_min=-128, quant_max=127, dtype=int8): float32[1, 2, 4, 4]"},
               {"batch_norm.default(input=%conv", "batch_norm.default(input=%y_dq"}})},
      {"TransposedConv", C::kTransposedConv,
       edited(kPlainBatchNorm, {{"aten.conv2d.default(input=%x_dq, weight=%w, bias=%b)",
                                 "aten.conv_transpose2d.input(input=%x_dq, weight=%w, bias=%b)"}})},
      {"ConvOutputIsAlsoAGraphOutput", C::kConvOutputShared,
       edited(kPlainBatchNorm, {{"return %bn", "return %bn, %conv"}})},
      {"ConvWeightIsQuantized", C::kQuantizedWeights,
       edited(kPlainBatchNorm,
              {{"buffer %mean", "buffer %w_q = \"w_q\": int8[2, 2, 1, 1] = [1, 0, 0, 1]\nbuffer %mean"},
               {"%conv =",
                "%w_dq = quantized_decomposed.dequantize_per_tensor.default(input=%w_q, scale=0.01, zero_point=0, "
                "quant_min=-127, quant_max=127, dtype=int8): float32[2, 2, 1, 1]\n%conv ="},
               {"weight=%w,", "weight=%w_dq,"}}),
       keepQuantizedBatchNorms()},
      {"ConvWeightIsComputed", C::kConvParameterNotConstant,
       edited(kPlainBatchNorm, {{"%conv =", "%w2 = aten.mul.Tensor(self=%w, other=1.0): float32[2, 2, 1, 1]\n%conv ="},
                                {"weight=%w,", "weight=%w2,"}})},
      {"ConvWeightIsFloat64", C::kConvParameterDtype,
       edited(kPlainBatchNorm, {{"\"conv.weight\": float32[2, 2, 1, 1]", "\"conv.weight\": float64[2, 2, 1, 1]"}})},
      {"ConvWeightIsAScalar", C::kScalarWeight,
       edited(kPlainBatchNorm,
              {{"\"conv.weight\": float32[2, 2, 1, 1] = [1, 0, 0, 1]", "\"conv.weight\": float32[] = [1]"}})},
      {"ConvBiasHasThreeChannels", C::kConvBiasLength,
       edited(kPlainBatchNorm,
              {{"\"conv.bias\": float32[2] = [0.5, 0.25]", "\"conv.bias\": float32[3] = [0.5, 0.25, 0]"}})},
      {"InfiniteConvBias", C::kNonFiniteBias,
       edited(kPlainBatchNorm,
              {{"\"conv.bias\": float32[2] = [0.5, 0.25]", "\"conv.bias\": float32[2] = [inf, 0.25]"}})},
      // ---- a plain batch_norm behind a quantized conv (FoldBatchNormIntoWeightScales) ----
      {"QuantizedBatchNormKept", C::kQuantizedWithoutChain, kQuantizedBatchNorm, keepQuantizedBatchNorms()},
      {"QuantizedOutputAlsoReturned", C::kQuantizedOutputShared,
       edited(kQuantizedBatchNorm, {{"return %o_dq", "return %o_dq, %y_dq"}})},
      {"SecondOutputPairAlsoReturned", C::kRequantizedOutputShared,
       edited(kQuantizedBatchNorm,
              {{"%bn = aten.batch_norm.default(input=%y_dq,",
                "%y_q2 = quantized_decomposed.quantize_per_tensor.default(input=%y_dq, scale=0.09, zero_point=1, "
                "quant_min=-128, quant_max=127, dtype=int8): int8[1, 2, 4, 4]\n"
                "%y_dq2 = quantized_decomposed.dequantize_per_tensor.default(input=%y_q2, scale=0.09, zero_point=1, "
                "quant_min=-128, quant_max=127, dtype=int8): float32[1, 2, 4, 4]\n"
                "%bn = aten.batch_norm.default(input=%y_dq2,"},
               {"return %o_dq", "return %o_dq, %y_dq2"}})},
      {"QuantizedConvOfAFloatInput", C::kInputNotQuantized,
       edited(kQuantizedBatchNorm, {{"conv2d.default(input=%x_dq,", "conv2d.default(input=%x,"}})},
      {"WeightScalesOnTheWrongAxis", C::kWeightNotPerChannelInt8,
       edited(kQuantizedBatchNorm, {{"zero_points=%w_zp, axis=0,", "zero_points=%w_zp, axis=1,"}})},
      {"GroupedTransposedConv", C::kGroupedTransposed,
       edited(kQuantizedBatchNorm, {{"aten.conv2d.default(input=%x_dq, weight=%w_dq, bias=%b)",
                                     "aten.conv_transpose2d.input(input=%x_dq, weight=%w_dq, bias=%b, stride=[1, 1], "
                                     "padding=[0, 0], output_padding=[0, 0], groups=2, dilation=[1, 1])"}})},
      {"ZeroBatchNormWeight", C::kZeroFactor,
       edited(kQuantizedBatchNorm, {{"float32[2] = [1.5, -0.5]", "float32[2] = [0, -0.5]"}})},
      {"WeightScaleUnderflows", C::kScaleNotNormal,
       edited(kQuantizedBatchNorm, {{"float32[2] = [0.01, 0.02]", "float32[2] = [1e-38, 0.02]"}})},
      {"NegativeFactorOnAnAsymmetricWeightRange", C::kCannotNegate,
       edited(kQuantizedBatchNorm, {{"axis=0, quant_min=-127,", "axis=0, quant_min=-128,"}})},
      {"RequantizationScaleTooLarge", C::kRequantizationScale,
       edited(kQuantizedBatchNorm, {{"input=%bn, scale=0.05,", "input=%bn, scale=1e-06,"},
                                    {"input=%o_q, scale=0.05,", "input=%o_q, scale=1e-06,"}})},
      {"NothingGivesTheFoldedRange", C::kOutputRangeUnknown,
       edited(kQuantizedBatchNorm, {{"return %o_dq", "return %bn"}})},
  };
}

TEST(Refusals, EveryCodeHasANamedNegativeCase) {
  std::map<RefusalCode, std::string> covered;
  for (const RefusalCase& c : refusalCases()) covered.emplace(c.code, c.name);
  for (const RefusalInfo& info : refusalTable()) {
    EXPECT_TRUE(covered.count(info.code)) << "refusal code '" << info.id << "' has no named negative case";
  }
}

TEST(Refusals, IdsAreUniqueAndMessagesNameNoCliFlag) {
  std::set<std::string_view> ids;
  for (const RefusalInfo& info : refusalTable()) {
    EXPECT_TRUE(ids.insert(info.id).second) << info.id;
    EXPECT_EQ(info.message.find("--"), std::string_view::npos) << info.id << ": the library does not name CLI flags";
    if (!info.option.empty()) {
      EXPECT_NE(findFoldOption(info.option), nullptr) << info.id;
    }
  }
}

class RefusalCaseTest : public ::testing::TestWithParam<RefusalCase> {};

TEST_P(RefusalCaseTest, KeepsTheBatchNormWithItsCodeAndChangesNothing) {
  const RefusalCase& c = GetParam();
  if (c.weights_pattern_only) {
    LoadedProgram loaded = LoadedProgram::fromText(c.program);
    graph::Node* bn = nullptr;
    for (graph::Node* node : loaded.graph->nodes()) {
      if (node->name() == "bn") bn = node;
    }
    ASSERT_NE(bn, nullptr);
    auto result = FoldBatchNormIntoWeights().match(*bn);
    ASSERT_TRUE(std::holds_alternative<Refusal>(result));
    EXPECT_EQ(refusalInfo(std::get<Refusal>(result).code).id, refusalInfo(c.code).id);
    return;
  }
  testing::TextFold f = testing::foldText(c.program, c.options);
  EXPECT_TRUE(f.report.folded.empty());
  ASSERT_EQ(f.report.skipped.size(), 1u);
  const SkippedBatchNorm& skipped = f.report.skipped[0];
  EXPECT_EQ(skipped.batch_norm, "bn");
  EXPECT_EQ(skipped.code(), refusalInfo(c.code).id) << skipped.reason();
  EXPECT_EQ(skipped.reason().find('{'), std::string::npos) << "every detail filled in: " << skipped.reason();
  EXPECT_FALSE(f.report.changed);
  EXPECT_EQ(f.after(), f.before) << "a program where nothing folds comes out unchanged";
}

INSTANTIATE_TEST_SUITE_P(Codes, RefusalCaseTest, ::testing::ValuesIn(refusalCases()),
                         [](const ::testing::TestParamInfo<RefusalCase>& info) { return info.param.name; });

// Each base folds as it is: the negative cases differ from a fold in one edit.
TEST(Refusals, TheBasesFold) {
  for (const std::string* base : {&kQatChain, &kFloatChain, &kPlainBatchNorm, &kQuantizedBatchNorm}) {
    testing::TextFold f = testing::foldText(*base);
    EXPECT_EQ(f.report.folded.size(), 1u) << *base;
    EXPECT_TRUE(f.report.skipped.empty()) << qatfold::report::foldReportText(f.report, true);
  }
}

}  // namespace
}  // namespace qatfold::passes
