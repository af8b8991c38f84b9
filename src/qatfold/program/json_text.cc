#include "qatfold/program/json_text.h"

#include <simdjson.h>

#include "qatfold/archive/limits.h"
#include "qatfold/error.h"
#include "qatfold/program/json.h"

namespace qatfold {

std::shared_ptr<const JsonText> JsonText::parse(std::string text, std::size_t max_depth) {
  static_assert(kPadding == simdjson::SIMDJSON_PADDING);
  std::shared_ptr<JsonText> parsed(new JsonText());
  // The DOM parser validates everything, including the values the On-Demand
  // readers later skip; its tape is thrown away.
  simdjson::dom::parser validator;
  auto validate = [&](std::string&& candidate) {
    parsed->size_ = candidate.size();
    parsed->buffer_ = std::move(candidate);
    parsed->buffer_.resize(parsed->size_ + kPadding, '\0');
    auto error = validator.allocate(parsed->size_, max_depth);
    if (!error) error = validator.parse(parsed->buffer_.data(), parsed->size_, false).error();
    return error;
  };
  auto error = validate(std::move(text));
  if (error && mayContainBareNonFinite(parsed->view())) {
    error = validate(quoteBareNonFinite(parsed->view()));
  }
  if (error == simdjson::DEPTH_ERROR) {
    throw Error("JSON nests deeper than the limit of " + std::to_string(max_depth) + " levels" +
                raiseWith("--max-json-depth"));
  }
  if (error) throw Error(std::string("malformed JSON: ") + simdjson::error_message(error));
  return parsed;
}

}  // namespace qatfold
