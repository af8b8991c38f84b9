// A checked toolkit over simdjson's On-Demand API, for the schema reader:
// On-Demand checks only what it is asked to read, so these read a value
// while checking it (or walk it to its end when it is kept as a slice of
// the text), say where in the record they are when something is wrong, and
// turn simdjson's errors into one "malformed JSON" message per record.
// Internal to program/: it exposes simdjson's types.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "qatfold/error.h"
#include "qatfold/program/json.h"
#include "qatfold/program/json_text.h"

namespace qatfold::program::checked {

namespace od = simdjson::ondemand;
using od::json_type;

// Where the reader is in a record ("models/model.json: graph_module.graph.
// nodes[3].inputs[1]"), as a chain of pieces on the stack: the text is only
// made for a message, so reading a record allocates no paths.
class Where {
 public:
  explicit Where(std::string_view root) : text_(root) {}
  // `parent` followed by `text` and, if given, "[index]". `parent` and
  // `text` must outlive this (pass it down, do not store it).
  Where(const Where& parent, std::string_view text, std::size_t index = kNoIndex)
      : parent_(&parent), text_(text), index_(index) {}

  std::string str() const {
    std::string out = parent_ != nullptr ? parent_->str() : std::string();
    out.append(text_);
    if (index_ != kNoIndex) out.append("[").append(std::to_string(index_)).append("]");
    return out;
  }

 private:
  static constexpr std::size_t kNoIndex = static_cast<std::size_t>(-1);
  const Where* parent_ = nullptr;
  std::string_view text_;
  std::size_t index_ = kNoIndex;
};

[[noreturn]] void fail(const Where& where, const std::string& what);

// The text is not JSON; `where` says how far the reader got. Reported by
// the record's parse() as one "malformed JSON" error.
struct MalformedJson {
  std::string message;
  std::string where;
};

template <class T>
T take(simdjson::simdjson_result<T>&& result, const Where& where) {
  T value;
  if (auto error = std::move(result).get(value)) throw MalformedJson{simdjson::error_message(error), where.str()};
  return value;
}

// `text` without trailing whitespace.
inline std::string_view trimmed(std::string_view text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\n' || text.back() == '\r' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  return text;
}
inline json_type typeOf(od::value& value, const Where& where) { return take(value.type(), where); }
// The key of `field` as the text spells it, between the quotes.
inline std::string_view keyOf(od::field& field) {
  const char* begin = field.key().raw();
  const char* end = begin;
  while (*end != '"') end += *end == '\\' ? 2 : 1;  // the text is validated: the quote comes
  return {begin, static_cast<std::size_t>(end - begin)};
}
// Checks a string's escapes in place, from just after its opening quote.
void validateRawString(const char* p, const Where& where);

// Every member of `object`, in order; its key is checked on the way.
template <class F>
void forEachMember(od::object& object, const Where& where, F&& visit) {
  for (auto member : object) {
    od::field field = take(std::move(member), where);
    validateRawString(field.key().raw(), where);
    visit(field);
  }
}

template <class F>
void forEachItem(od::array& array, const Where& where, F&& visit) {
  std::size_t index = 0;
  for (auto item : array) {
    od::value value = take(std::move(item), where);
    visit(value, index++);
  }
}

// An object's or array's own text; it is rewound so it can be walked after.
template <class Container>
std::string_view sourceOf(Container& container, const Where& where) {
  std::string_view source = trimmed(take(container.raw_json(), where));
  take(container.reset(), where);
  return source;
}

// Reads `value` to its end, checking that it is well-formed JSON.
void validate(od::value& value, const Where& where);
// The exact text of `value`, checked.
std::string_view rawValue(od::value& value, const Where& where);

inline od::object expectObject(od::value& value, const Where& where) {
  if (typeOf(value, where) != json_type::object) fail(where, "expected an object");
  return take(value.get_object(), where);
}
inline od::array expectArray(od::value& value, const Where& where) {
  if (typeOf(value, where) != json_type::array) fail(where, "expected a list");
  return take(value.get_array(), where);
}
inline std::string expectString(od::value& value, const Where& where) {
  if (typeOf(value, where) != json_type::string) fail(where, "expected a string");
  return std::string(take(value.get_string(), where));
}
inline bool expectBool(od::value& value, const Where& where) {
  if (typeOf(value, where) != json_type::boolean) fail(where, "expected a boolean");
  return take(value.get_bool(), where);
}
inline std::int64_t expectInt(od::value& value, const Where& where) {
  if (typeOf(value, where) != json_type::number ||
      take(value.get_number_type(), where) == od::number_type::floating_point_number) {
    fail(where, "expected an integer");
  }
  std::int64_t result = 0;
  if (value.get_int64().get(result)) fail(where, "expected an integer");
  return result;
}
inline void requireField(bool seen, const char* key, const Where& where) {
  if (!seen) fail(where, std::string("missing field '") + key + "'");
}

// A small value as a Json tree (arguments, specs).
Json toJson(od::value& value, const Where& where);
Json objectToJson(od::object& object, const Where& where);

// The top-level object of `text`, iterated by `parser` into `document`.
od::object documentObject(od::parser& parser, od::document& document, const JsonText& text, const Where& where);
// Nothing but whitespace may follow the top-level value.
void expectEnd(od::document& document, const Where& where);

// Runs `read`, turning a MalformedJson into the record's one-line error.
template <class F>
auto reportingMalformed(const std::string& where, F&& read) {
  try {
    return read();
  } catch (const MalformedJson& e) {
    std::string at = e.where.rfind(where, 0) == 0 ? e.where.substr(where.size()) : e.where;
    while (!at.empty() && (at.front() == ':' || at.front() == ' ' || at.front() == '.')) at.erase(0, 1);
    throw Error(where + ": malformed JSON: " + e.message + (at.empty() ? "" : " (in " + at + ")"));
  }
}

}  // namespace qatfold::program::checked
