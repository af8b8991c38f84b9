#include "qatfold/passes/refusal.h"

namespace qatfold::passes {
namespace {

constexpr RefusalInfo kRefusals[] = {
#define QATFOLD_REFUSAL_ROW(code, id, message, option) {RefusalCode::code, id, message, option},
    QATFOLD_REFUSALS(QATFOLD_REFUSAL_ROW)
#undef QATFOLD_REFUSAL_ROW
};

}  // namespace

std::span<const RefusalInfo> refusalTable() { return kRefusals; }

const RefusalInfo& refusalInfo(RefusalCode code) { return kRefusals[static_cast<std::size_t>(code)]; }

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
