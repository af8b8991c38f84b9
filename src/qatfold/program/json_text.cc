#include "qatfold/program/json_text.h"

#include <simdjson.h>

#include "qatfold/program/json.h"

namespace qatfold {

std::shared_ptr<const JsonText> JsonText::parse(std::string text, std::size_t max_depth) {
  static_assert(kPadding == simdjson::SIMDJSON_PADDING);
  // One linear scan bounds the nesting before any reader recurses, and
  // tells whether Python's bare NaN/Infinity tokens need quoting.
  if (checkJsonDepth(text, max_depth)) text = quoteBareNonFinite(text);
  std::shared_ptr<JsonText> parsed(new JsonText());
  parsed->size_ = text.size();
  parsed->max_depth_ = max_depth;
  parsed->buffer_ = std::move(text);
  parsed->buffer_.resize(parsed->size_ + kPadding, '\0');
  return parsed;
}

}  // namespace qatfold
