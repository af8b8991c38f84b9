#include "qatfold/passes/refusal.h"

#include "qatfold/passes/fold_options.h"

namespace qatfold::passes {
namespace {

// "name=value" -> name, value; "name" -> name, "".
constexpr std::string_view optionPart(std::string_view option, bool value) {
  const std::size_t equals = option.find('=');
  if (equals == std::string_view::npos) return value ? std::string_view() : option;
  return value ? option.substr(equals + 1) : option.substr(0, equals);
}

constexpr RefusalInfo kRefusals[] = {
#define QATFOLD_REFUSAL_ROW(code, id, message, option) \
  {RefusalCode::code, id, message, optionPart(option, false), optionPart(option, true)},
    QATFOLD_REFUSALS(QATFOLD_REFUSAL_ROW)
#undef QATFOLD_REFUSAL_ROW
};

}  // namespace

std::span<const RefusalInfo> refusalTable() { return kRefusals; }

const RefusalInfo& refusalInfo(RefusalCode code) { return kRefusals[static_cast<std::size_t>(code)]; }

std::string optionAdvice(const RefusalInfo& info, OptionStyle style) {
  if (info.option_value.empty()) return "raise it with " + optionName(info.option, style);
  const FoldOptionInfo* option = findFoldOption(info.option);
  const std::string name = option == nullptr ? std::string(info.option) : std::string(option->cli_flag);
  const std::string set = style == OptionStyle::kCli
                              ? "set " + name + " " + std::string(info.option_value)
                              : "set " + std::string(info.option) + "='" + std::string(info.option_value) + "'";
  if (info.code != RefusalCode::kOutputRangeUnknown) return set;
  // The command line runs no programs; Python's fold does.
  return style == OptionStyle::kCli ? "calibrate with `python -m qatfold fold --calibrate INPUTS`, or " + set
                                    : "pass calibrate=inputs, or " + set;
}

std::string Refusal::message() const {
  const std::string_view text = info().message;
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    // {N}: detail N (a single digit is enough for any message here).
    if (text[i] == '{' && i + 2 < text.size() && text[i + 2] == '}' && text[i + 1] >= '0' && text[i + 1] <= '9') {
      const auto index = static_cast<std::size_t>(text[i + 1] - '0');
      out += index < details.size() ? details[index] : std::string("?");
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

}  // namespace qatfold::passes
