// The options of the fold pipeline, declared once. The CLI's flags, the
// Python keywords of qatfold.fold and FuseQATConvBN, and `qatfold passes`
// all come from kFoldOptions: adding an option means adding a FoldOptions
// field and its row here.
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "qatfold/passes/bias_preparation.h"

namespace qatfold::passes {

// Default for risk_threshold: the observer after a conv saw its output
// without the BN shift, whose extremes sit at the range's ends, so a shift of
// a tenth of the range already clips a visible share of them.
inline constexpr double kDefaultRiskThreshold = 0.1;

// Default for eps_tolerance: a tenth of a percent, well under one step of an
// 8-bit output (0.4% of its range).
inline constexpr double kDefaultEpsTolerance = 1e-3;

// What a fold does with the output quantization of a conv whose BatchNorm
// shift C it folded (numerics/output_range.h). Measured on trained models
// (README, scripts/output_range_remedies.py): widening rescues a program
// whose BatchNorm statistics moved away from the calibration data, and where
// nothing clips its coarser steps cost (a worse max deviation), so keeping is
// the default.
enum class OutputRange {
  kKeep,   // leave it as calibrated (ExecuTorch's pass does the same)
  kWiden,  // stretch it to cover y + C, same integer range
};
inline constexpr std::string_view kOutputRangeNames[] = {"keep", "widen"};

// What the fold does with a plain batch_norm behind a quantized conv or
// linear with per-channel weights (conv -> q -> dq -> batch_norm, where
// torchao built no QAT chain): fold it into the weight scales and the float
// bias when the folded output's quantization is known (a quantize QAT
// trained after the batch_norm or its ReLU, or calibration), also with an
// estimated range, or never.
enum class QuantizedBatchNorm {
  kAuto,      // fold where the output quantization is trained or calibrated
  kEstimate,  // also where it can only be estimated (numerics/output_range.h)
  kKeep,      // leave them all (a per-tensor requantization stays in front of each)
};
inline constexpr std::string_view kQuantizedBatchNormNames[] = {"auto", "estimate", "keep"};

// What the fold does with per-tensor weights behind such a batch_norm: one
// scale cannot take a per-channel factor, so folding re-quantizes them.
enum class PerTensorWeights {
  kRefuse,      // leave the batch_norm, with the reason
  kRequantize,  // re-quantize the folded weights (lossy; the report gives the error)
};
inline constexpr std::string_view kPerTensorWeightsNames[] = {"refuse", "requantize"};

// A calibrated range of a batch_norm's output, as torch's MinMaxObserver
// saw it (qatfold.fold(calibrate=...)): batch_norm node name -> [min, max].
struct ObservedRange {
  float min = 0;
  float max = 0;
};

struct FoldOptions {
  double risk_threshold = kDefaultRiskThreshold;
  double eps_tolerance = kDefaultEpsTolerance;
  BiasPreparation bias_preparation = BiasPreparation::kAuto;
  OutputRange output_range = OutputRange::kKeep;
  QuantizedBatchNorm quantized_batch_norm = QuantizedBatchNorm::kAuto;
  PerTensorWeights per_tensor_weights = PerTensorWeights::kRefuse;
  bool strict = false;
  // Not an option of the table below: data, given by the Python front end.
  std::map<std::string, ObservedRange, std::less<>> observed_ranges;
};

// One option as every front end spells it. A real-valued option points at
// its field with `real` and has the bounds [min, max]; a flag (on or off)
// points at its field with `flag`; a choice takes one of `choices` (its
// enum's names, in enum order) and reads and writes its field through
// `get_choice`/`set_choice` as an index (see choiceOption).
struct FoldOptionInfo {
  std::string_view python_name;  // "risk_threshold"
  std::string_view cli_flag;     // "--risk-threshold"
  std::string_view help;
  double FoldOptions::* real = nullptr;
  double min = 0;
  double max = 0;
  std::span<const std::string_view> choices = {};
  std::size_t (*get_choice)(const FoldOptions&) = nullptr;
  void (*set_choice)(FoldOptions&, std::size_t) = nullptr;
  bool FoldOptions::* flag = nullptr;
};

// The row of a flag.
constexpr FoldOptionInfo flagOption(std::string_view python_name, std::string_view cli_flag, std::string_view help,
                                    bool FoldOptions::* field) {
  FoldOptionInfo info{python_name, cli_flag, help};
  info.flag = field;
  return info;
}

// The row of an enum field whose values are 0 .. names.size() - 1.
template <auto Field>
constexpr FoldOptionInfo choiceOption(std::string_view python_name, std::string_view cli_flag, std::string_view help,
                                      std::span<const std::string_view> names) {
  using Enum = std::remove_cvref_t<decltype(std::declval<FoldOptions>().*Field)>;
  FoldOptionInfo info{python_name, cli_flag, help};
  info.choices = names;
  info.get_choice = [](const FoldOptions& options) { return static_cast<std::size_t>(options.*Field); };
  info.set_choice = [](FoldOptions& options, std::size_t index) { options.*Field = static_cast<Enum>(index); };
  return info;
}

inline constexpr FoldOptionInfo kFoldOptions[] = {
    {"risk_threshold", "--risk-threshold",
     "Flag convs whose largest BN shift exceeds this fraction of their output range", &FoldOptions::risk_threshold, 0.0,
     1e9},
    {"eps_tolerance", "--eps-tolerance",
     "Where the scale chain's eps differs from batch_norm's and weights are per tensor, fold only if the output "
     "factor r is within this of 1 (per-channel weights absorb r exactly)",
     &FoldOptions::eps_tolerance, 0.0, 1.0},
    choiceOption<&FoldOptions::bias_preparation>(
        "bias_preparation", "--bias-prep",
        "Which convs get an int32 bias: 'all' with quantized input and weight (ExecuTorch's pass, what Cadence "
        "expects), 'folded' only those whose chain folds (float-bias backends such as XNNPACK), 'auto' all when the "
        "program already encodes conv biases as int32, else folded",
        kBiasPreparationNames),
    choiceOption<&FoldOptions::output_range>(
        "output_range", "--output-range",
        "The output quantization of a folded conv: 'keep' it as calibrated (ExecuTorch's pass), or 'widen' it to "
        "cover the folded BatchNorm shift with the same integer range (for BN statistics far from the calibration "
        "data; coarser steps elsewhere)",
        kOutputRangeNames),
    choiceOption<&FoldOptions::quantized_batch_norm>(
        "quantized_batch_norm", "--quantized-bn",
        "A batch_norm behind a quantized conv or linear with per-channel weights (no QAT chain: conv3d, "
        "padding='same', linear + BatchNorm1d): 'auto' folds it into the weight scales and bias where a quantize "
        "trained after it (or its ReLU) or calibration gives the output range, 'estimate' also with an estimated "
        "range, 'keep' never",
        kQuantizedBatchNormNames),
    choiceOption<&FoldOptions::per_tensor_weights>(
        "per_tensor_weights", "--per-tensor-weights",
        "Such a batch_norm behind a layer with per-tensor weights: 'refuse' to fold it, or 'requantize' the folded "
        "weights to one new per-tensor scale (lossy: the report gives the weight error)",
        kPerTensorWeightsNames),
    flagOption("strict", "--strict",
               "Fail (exit 4 after writing the output; Python: QatfoldError with the report) when a batch_norm is "
               "left in a quantized program, one runs in training mode, or the program has batch_norms and no "
               "quantization, listing each with its reason",
               &FoldOptions::strict),
};

// The row of `python_name`, or null.
const FoldOptionInfo* findFoldOption(std::string_view python_name);

// Sets option `info` of `options` from text ("0.2", "folded"); returns why
// not if the text is not a valid value. Front ends parse through this, so
// every one accepts the same values.
std::optional<std::string> setFoldOption(FoldOptions& options, const FoldOptionInfo& info, std::string_view text);
// How a front end names an option in a message: the CLI by its flag
// ("--eps-tolerance"), Python by its keyword ("eps_tolerance=").
enum class OptionStyle { kPython, kCli };
std::string optionName(std::string_view python_name, OptionStyle style);

// The value of option `info` in `options`, as setFoldOption reads it.
std::string foldOptionValue(const FoldOptions& options, const FoldOptionInfo& info);

}  // namespace qatfold::passes
