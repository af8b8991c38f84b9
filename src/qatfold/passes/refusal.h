// Why a batch_norm was not folded: one code from one table, and the details
// its message is built from.
//
// Every refusal a pass can give is a row below: the code, a stable id (the
// report's JSON carries it), and the message with {0}, {1}, ... standing for
// the details the refusing site supplies. A code whose limit a user can
// act on names that option (fold_options.h), as "name" (a number to raise) or
// "name=value" (the choice to set); each front end says how, in its own
// terms. tests/cpp/refusal_test.cc holds a named negative case per code
// and fails when a code has none.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qatfold::passes {

// X(code, id, message, option)
#define QATFOLD_REFUSALS(X)                                                                                            \
  /* the batch_norm itself */                                                                                          \
  X(kTrainingMode, "training-mode", "batch_norm runs in training mode", "")                                            \
  X(kUnexpectedOutputs, "unexpected-outputs", "batch_norm has an unexpected number of outputs", "")                    \
  X(kNoOutput, "no-output", "batch_norm has no output", "")                                                            \
  X(kStatisticsUsed, "statistics-used", "batch_norm's saved statistics '{0}' are used", "")                            \
  X(kEpsNotConstant, "eps-not-constant", "batch_norm eps is not a constant", "")                                       \
  X(kInputNotComputed, "input-not-computed", "input is not computed by an op", "")                                     \
  /* its parameters */                                                                                                 \
  X(kParameterNotConstant, "parameter-not-constant", "{0} is not a constant parameter, buffer or tensor constant", "") \
  X(kParameterDtype, "parameter-dtype", "{0} has dtype {1}, not float32", "")                                          \
  X(kParameterLength, "parameter-length", "{0} has {1} elements for {2} channels", "")                                 \
  X(kVarianceNotPositive, "variance-not-positive",                                                                     \
    "running_var + eps is {0} for channel {1}, not a positive finite number", "")                                      \
  /* the tail of a QAT chain: div, [add], batch_norm */                                                                \
  X(kNotAChain, "not-a-chain", "input comes from '{0}' ({1}), not from a QAT conv chain", "")                          \
  X(kNotQuantized, "not-quantized",                                                                                    \
    "the program is not quantized (no quantize or dequantize op): no quantized conv or linear to fold it into, and "   \
    "a float model's batch_norms are torch's to fold",                                                                 \
    "")                                                                                                                \
  X(kAddWithoutDiv, "add-without-div", "input is an add without a div operand: not a QAT chain", "")                   \
  X(kOrigBiasAlpha, "orig-bias-alpha", "the orig_bias add has alpha != 1", "")                                         \
  X(kOrigBiasNotReshape, "orig-bias-not-reshape",                                                                      \
    "the orig_bias operand of the add is not a reshape/view of a constant", "")                                        \
  X(kNothingDivided, "nothing-divided", "the div has no tensor to divide", "")                                         \
  X(kDivisorNotReshape, "divisor-not-reshape", "the divisor is not a reshape/view", "")                                \
  X(kDivisorNotScale, "divisor-not-scale", "the divisor is not bn_weight / sqrt(running_var + eps)", "")               \
  X(kChainEpsNotConstant, "chain-eps-not-constant", "the eps added to running_var is not a constant", "")              \
  X(kUsedOutsideChain, "used-outside-chain", "{0} outside the chain", "")                                              \
  X(kDivisorNotPerChannel, "divisor-not-per-channel",                                                                  \
    "the divisor is not broadcast along the conv's channel dimension", "")                                             \
  X(kOrigBiasNotPerChannel, "orig-bias-not-per-channel",                                                               \
    "orig_bias is not broadcast along the conv's channel dimension", "")                                               \
  X(kNonFiniteShift, "non-finite-shift", "the batch_norm parameters give a non-finite shift", "")                      \
  X(kNonFiniteEpsFactor, "non-finite-eps-factor",                                                                      \
    "the batch_norm's scale over the chain's divisor is {0} for channel {1}, not a positive finite number", "")        \
  /* what precedes the tail: the conv, its output quantization, its bias */                                            \
  X(kNoOutputDequantize, "no-output-dequantize",                                                                       \
    "the divided value is neither a conv output nor dequantized per tensor", "")                                       \
  X(kNoOutputQuantize, "no-output-quantize", "the dequantize after the conv is not fed by quantize_per_tensor", "")    \
  X(kOutputQuantizationMismatch, "output-quantization-mismatch",                                                       \
    "the quantize/dequantize pair after the conv disagree on their parameters", "")                                    \
  X(kNotConvOutput, "not-conv-output", "the quantized value is not a convolution or linear output", "")                \
  X(kOutputShapeUnknown, "output-shape-unknown", "conv output shape is unknown", "")                                   \
  X(kChannelsSymbolic, "channels-symbolic",                                                                            \
    "the channel dimension of '{0}''s output is symbolic (exported as dynamic): its bias needs the channel count", "") \
  X(kBiasNotPreparable, "bias-not-preparable", "'{0}' has no int32 dequantized bias and cannot be given one: {1}", "") \
  X(kBiasNotInt32Constant, "bias-not-int32-constant", "the bias of conv '{0}' is not a constant int32 tensor", "")     \
  X(kBiasScalesNotConstant, "bias-scales-not-constant", "the per-channel bias scales or zero points are not constant", \
    "")                                                                                                                \
  X(kBiasScalesShape, "bias-scales-shape", "the per-channel bias scales are not float32 with one per channel", "")     \
  X(kBiasZeroPointsShape, "bias-zero-points-shape", "the per-channel bias zero points are not one per channel", "")    \
  X(kBiasScaleNotPositive, "bias-scale-not-positive", "the bias scale is not a positive finite number", "")            \
  X(kEpsMismatchPerTensor, "eps-mismatch-per-tensor",                                                                  \
    "the scale chain's eps {0} differs from batch_norm's eps {1}; with per-tensor weights the output would be off by " \
    "up to {2}%, more than the eps tolerance {3}",                                                                     \
    "eps_tolerance")                                                                                                   \
  X(kParameterFactorPerTensor, "parameter-factor-per-tensor",                                                          \
    "the batch_norm reads quantized copies of its parameters, which scale the output by up to {0}% more than the "     \
    "chain's divisor undoes; with per-tensor weights that is more than the eps tolerance {1}",                         \
    "eps_tolerance")                                                                                                   \
  X(kWeightNotRequantizable, "weight-not-requantizable",                                                               \
    "the weight of '{0}' is not a per-tensor int8 constant read by it alone with a per-tensor bias and input, so it "  \
    "cannot be re-quantized with the chain's factor",                                                                  \
    "")                                                                                                                \
  X(kQuantizedBiasUnquantizedOutput, "quantized-bias-unquantized-output",                                              \
    "conv '{0}' has a quantized bias but no quantize/dequantize on its output", "")                                    \
  X(kFloatBiasNotConstant, "float-bias-not-constant", "the bias of conv '{0}' is not a float constant", "")            \
  X(kFloatBiasShape, "float-bias-shape", "the bias of conv '{0}' is not float32 with one value per channel", "")       \
  X(kEpsMismatchFloat, "eps-mismatch-float",                                                                           \
    "the scale chain's eps {0} differs from batch_norm's eps {1} (folded only for quantized convs)", "")               \
  /* a plain batch_norm after a conv or linear (FoldBatchNormIntoWeights) */                                           \
  X(kNotAfterConv, "not-after-conv", "input comes from '{0}' ({1}), not from a conv or linear", "")                    \
  X(kQuantizedWithoutChain, "quantized-without-chain",                                                                 \
    "'{0}' is quantized and has no QAT chain ({1}): its batch_norm follows the output "                                \
    "quantization, where a per-channel scale cannot be folded without re-quantizing; fold the BatchNorm before "       \
    "quantizing",                                                                                                      \
    "")                                                                                                                \
  X(kTransposedConv, "transposed-conv", "a batch_norm right after a transposed conv is not folded into its weights",   \
    "")                                                                                                                \
  X(kConvOutputShared, "conv-output-shared", "the conv output is read {0} besides the batch_norm", "")                 \
  X(kQuantizedWeights, "quantized-weights",                                                                            \
    "conv '{0}' has quantized weights: folding its batch_norm would re-quantize them", "")                             \
  X(kConvParameterNotConstant, "conv-parameter-not-constant", "the conv {0} is not a constant", "")                    \
  X(kConvParameterDtype, "conv-parameter-dtype", "the conv {0} is not float32", "")                                    \
  X(kScalarWeight, "scalar-weight", "the conv weight is a scalar", "")                                                 \
  X(kConvBiasLength, "conv-bias-length", "the conv bias does not have one value per output channel", "")               \
  X(kNonFiniteBias, "non-finite-bias", "the batch_norm parameters give a non-finite bias", "")                         \
  /* a plain batch_norm behind a quantized conv or linear (FoldBatchNormIntoWeightScales) */                           \
  X(kQuantizedOutputShared, "quantized-output-shared",                                                                 \
    "the output quantization of '{0}' is read {1} besides the batch_norm", "")                                         \
  X(kRequantizedOutputShared, "requantized-output-shared",                                                             \
    "the layer output re-quantized by '{0}' is read {1} besides the batch_norm", "")                                   \
  X(kInputNotQuantized, "input-not-quantized", "the input of '{0}' is not dequantized per tensor", "")                 \
  X(kPerTensorWeights, "per-tensor-weights",                                                                           \
    "'{0}' has per-tensor weights: folding its batch_norm would re-quantize them (per-channel weights fold exactly)",  \
    "per_tensor_weights=requantize")                                                                                   \
  X(kWeightNotPerChannelInt8, "weight-not-per-channel-int8",                                                           \
    "the weight of '{0}' is not a constant int8 tensor with float32 scales and integer zero points, one per output "   \
    "channel (axis {1}), read by this layer alone",                                                                    \
    "")                                                                                                                \
  X(kGroupedTransposed, "grouped-transposed", "transposed conv '{0}' has groups > 1: its channels are not axis 1", "") \
  X(kZeroFactor, "zero-factor", "batch_norm weight / sqrt(var + eps) is 0 for channel {0}: it would have no scale",    \
    "")                                                                                                                \
  X(kScaleNotNormal, "scale-not-normal",                                                                               \
    "channel {0}'s weight scale would be {1}, not a finite, normal, positive float32", "")                             \
  X(kCannotNegate, "cannot-negate",                                                                                    \
    "channel {0}'s batch_norm factor is negative ({1}) and the weight's zero point or integer range is not "           \
    "symmetric, so its integers cannot be negated",                                                                    \
    "")                                                                                                                \
  X(kRequantizationScale, "requantization-scale",                                                                      \
    "channel {0}'s requantization scale (input scale * weight scale / output scale) would be {1}, not below 256 as "   \
    "XNNPACK requires",                                                                                                \
    "")                                                                                                                \
  X(kOutputRangeUnknown, "output-range-unknown",                                                                       \
    "'{0}' is quantized and has no QAT chain ({1}); the batch_norm could fold into its "                               \
    "per-channel weight scales, but "                                                                                  \
    "nothing tells the folded output's range: no quantize follows the batch_norm (or its ReLU) and no calibration "    \
    "covered it",                                                                                                      \
    "quantized_batch_norm=estimate")

enum class RefusalCode {
#define QATFOLD_REFUSAL_ENUM(code, id, message, option) code,
  QATFOLD_REFUSALS(QATFOLD_REFUSAL_ENUM)
#undef QATFOLD_REFUSAL_ENUM
};

struct RefusalInfo {
  RefusalCode code;
  std::string_view id;            // "eps-mismatch-per-tensor"
  std::string_view message;       // with {0}, {1}, ... for the details
  std::string_view option;        // Python name of the option that acts on it, or ""
  std::string_view option_value;  // for a choice option, the value that acts on it; "" for a number to raise
};

// How a front end tells the user to act on a refusal's option: "raise it
// with --eps-tolerance" / "set per_tensor_weights='requantize'"; a refusal
// for want of an output range also names the front end's calibration.
enum class OptionStyle;
std::string optionAdvice(const RefusalInfo& info, OptionStyle style);

// Every code, in declaration order.
std::span<const RefusalInfo> refusalTable();
const RefusalInfo& refusalInfo(RefusalCode code);

// How far a pass's pattern matched before it refused. A batch_norm no pass
// folds keeps the refusal of the pass that got furthest, so the report names
// the refusal that matters, not the first one.
enum class MatchStage {
  kNotThisPattern = 0,  // not what the pattern is about (no chain, not after a conv, ...)
  kRefused = 1,         // the pattern's own case, refused for a reason of its own
};

struct Refusal {
  RefusalCode code;
  std::vector<std::string> details;
  MatchStage stage = MatchStage::kRefused;
  // The batch_norm looked like a QAT chain (so the report lists it without --explain).
  bool qat_chain = true;

  // The code's message with the details filled in.
  std::string message() const;
  const RefusalInfo& info() const { return refusalInfo(code); }
};

// A refusal of something that is a QAT chain of the pass's own kind.
inline Refusal chainFailure(RefusalCode code, std::vector<std::string> details = {}) {
  return Refusal{code, std::move(details), MatchStage::kRefused, true};
}
// Not a QAT chain at all (kNotThisPattern), or a plain batch_norm this pass
// was about but refused (kRefused).
inline Refusal plainRefusal(RefusalCode code, std::vector<std::string> details = {},
                            MatchStage stage = MatchStage::kNotThisPattern) {
  return Refusal{code, std::move(details), stage, false};
}

}  // namespace qatfold::passes
