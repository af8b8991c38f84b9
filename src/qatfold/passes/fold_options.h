// The options of the fold pipeline, declared once. The CLI's flags, the
// Python keywords of qatfold.fold and FuseQATConvBN, and `qatfold passes`
// all come from kFoldOptions: adding an option means adding a FoldOptions
// field and its row here.
#pragma once

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

struct FoldOptions {
  double risk_threshold = kDefaultRiskThreshold;
  double eps_tolerance = kDefaultEpsTolerance;
  BiasPreparation bias_preparation = BiasPreparation::kAuto;
  OutputRange output_range = OutputRange::kKeep;
};

// One option as every front end spells it. A real-valued option points at
// its field with `real` and has the bounds [min, max]; a choice takes one of
// `choices` (its enum's names, in enum order) and reads and writes its field
// through `get_choice`/`set_choice` as an index (see choiceOption).
struct FoldOptionInfo {
  std::string_view python_name;  // "risk_threshold"
  std::string_view cli_flag;     // "--risk-threshold"
  std::string_view help;
  double FoldOptions::*real = nullptr;
  double min = 0;
  double max = 0;
  std::span<const std::string_view> choices = {};
  std::size_t (*get_choice)(const FoldOptions&) = nullptr;
  void (*set_choice)(FoldOptions&, std::size_t) = nullptr;
};

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
