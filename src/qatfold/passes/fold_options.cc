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
  if (info.flag != nullptr) {
    if (text == "true" || text == "false") {
      options.*info.flag = text == "true";
      return std::nullopt;
    }
    return std::string(info.python_name) + " must be true or false, not '" + std::string(text) + "'";
  }
  if (!info.choices.empty()) {
    for (std::size_t i = 0; i < info.choices.size(); ++i) {
      if (info.choices[i] != text) continue;
      info.set_choice(options, i);
      return std::nullopt;
    }
    std::string names;
    for (std::string_view name : info.choices)
      names += std::string(names.empty() ? "" : ", ") + "'" + std::string(name) + "'";
    return std::string(info.python_name) + " must be one of " + names + ", not '" + std::string(text) + "'";
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
  if (info.flag != nullptr) return options.*info.flag ? "true" : "false";
  if (!info.choices.empty()) return std::string(info.choices[info.get_choice(options)]);
  return formatFloatLikePython(options.*info.real);
}

std::string optionName(std::string_view python_name, OptionStyle style) {
  const FoldOptionInfo* info = findFoldOption(python_name);
  if (info == nullptr) return std::string(python_name);
  return style == OptionStyle::kCli ? std::string(info->cli_flag) : std::string(info->python_name) + "=";
}

}  // namespace qatfold::passes
