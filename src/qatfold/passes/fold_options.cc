#include "qatfold/passes/fold_options.h"

#include <charconv>
#include <cmath>
#include <sstream>

#include "qatfold/program/json.h"

namespace qatfold::passes {

const FoldOptionInfo* findFoldOption(std::string_view python_name) {
  for (const FoldOptionInfo& info : kFoldOptions) {
    if (info.python_name == python_name) return &info;
  }
  return nullptr;
}

std::optional<std::string> setFoldOption(FoldOptions& options, const FoldOptionInfo& info, std::string_view text) {
  if (info.policy != nullptr) {
    const auto policy = parseBiasPreparation(text);
    if (!policy) {
      std::string names;
      for (BiasPreparation p : kBiasPreparations) names += std::string(names.empty() ? "" : ", ") + "'" + std::string(biasPreparationName(p)) + "'";
      return std::string(info.python_name) + " must be one of " + names + ", not '" + std::string(text) + "'";
    }
    options.*info.policy = *policy;
    return std::nullopt;
  }
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
    return std::string(info.python_name) + " must be a number, not '" + std::string(text) + "'";
  }
  if (value < info.min || value > info.max) {
    return std::string(info.python_name) + " must be in [" + formatFloatLikePython(info.min) + ", " +
           formatFloatLikePython(info.max) + "], not " + std::string(text);
  }
  options.*info.real = value;
  return std::nullopt;
}

std::string foldOptionValue(const FoldOptions& options, const FoldOptionInfo& info) {
  if (info.policy != nullptr) return std::string(biasPreparationName(options.*info.policy));
  return formatFloatLikePython(options.*info.real);
}

std::string optionName(std::string_view python_name, OptionStyle style) {
  const FoldOptionInfo* info = findFoldOption(python_name);
  if (info == nullptr) return std::string(python_name);
  return style == OptionStyle::kCli ? std::string(info->cli_flag) : std::string(info->python_name) + "=";
}

}  // namespace qatfold::passes
