#include "qatfold/program/checked_json.h"

namespace qatfold::program::checked {
namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The four hex digits of a \u escape at `p`, or -1.
int escapedUnit(const char* p) {
  int unit = 0;
  for (int i = 0; i < 4; ++i) {
    const int digit = hexValue(p[i]);
    if (digit < 0) return -1;
    unit = unit * 16 + digit;
  }
  return unit;
}

// Reads the members or items to the end, checking that they are well-formed JSON.
void validateMembers(od::object& object, const Where& where) {
  forEachMember(object, where, [&](od::field& field) { validate(field.value(), where); });
}

void validateItems(od::array& array, const Where& where) {
  forEachItem(array, where, [&](od::value& item, std::size_t) { validate(item, where); });
}

}  // namespace

Json objectToJson(od::object& object, const Where& where) {
  Json out = Json::object();
  forEachMember(object, where, [&](od::field& field) {
    std::string key(take(field.unescaped_key(), where));
    od::value member = field.value();
    Json converted = toJson(member, where);
    out[key] = std::move(converted);
  });
  return out;
}

[[noreturn]] void fail(const Where& where, const std::string& what) { throw Error(where.str() + ": " + what); }

// Checks a string's escapes in place, from just after its opening quote, so
// validating the text the reader keeps as slices copies nothing. (simdjson's
// first stage has already checked the UTF-8 and found the closing quote.)
void validateRawString(const char* p, const Where& where) {
  while (true) {
    const unsigned char c = static_cast<unsigned char>(*p++);
    if (c == '"') return;
    if (c < 0x20) throw MalformedJson{"control character in a string", where.str()};
    if (c != '\\') continue;
    const char escape = *p++;
    if (escape == 'u') {
      const int unit = escapedUnit(p);
      if (unit < 0) throw MalformedJson{"invalid \\u escape in a string", where.str()};
      p += 4;
      if (unit >= 0xDC00 && unit <= 0xDFFF) throw MalformedJson{"unpaired surrogate in a string", where.str()};
      if (unit >= 0xD800 && unit <= 0xDBFF) {
        const int low = p[0] == '\\' && p[1] == 'u' ? escapedUnit(p + 2) : -1;
        if (low < 0xDC00 || low > 0xDFFF) throw MalformedJson{"unpaired surrogate in a string", where.str()};
        p += 6;
      }
    } else if (escape != '"' && escape != '\\' && escape != '/' && escape != 'b' && escape != 'f' && escape != 'n' &&
               escape != 'r' && escape != 't') {
      throw MalformedJson{"invalid escape in a string", where.str()};
    }
  }
}

// Reads `value` to its end, checking that it is well-formed JSON.
void validate(od::value& value, const Where& where) {
  switch (typeOf(value, where)) {
    case json_type::object: {
      od::object object = take(value.get_object(), where);
      validateMembers(object, where);
      return;
    }
    case json_type::array: {
      od::array array = take(value.get_array(), where);
      validateItems(array, where);
      return;
    }
    case json_type::number: (void)take(value.get_double(), where); return;
    case json_type::string: validateRawString(take(value.get_raw_json_string(), where).raw(), where); return;
    case json_type::boolean: (void)take(value.get_bool(), where); return;
    case json_type::null:
      if (!take(value.is_null(), where)) throw MalformedJson{"invalid literal", where.str()};
      return;
  }
}

// The exact text of `value`, checked.
std::string_view rawValue(od::value& value, const Where& where) {
  switch (typeOf(value, where)) {
    case json_type::object: {
      od::object object = take(value.get_object(), where);
      const std::string_view raw = sourceOf(object, where);
      validateMembers(object, where);
      return raw;
    }
    case json_type::array: {
      od::array array = take(value.get_array(), where);
      const std::string_view raw = sourceOf(array, where);
      validateItems(array, where);
      return raw;
    }
    default: {
      const std::string_view raw = trimmed(value.raw_json_token());
      validate(value, where);
      return raw;
    }
  }
}

Json toJson(od::value& value, const Where& where) {
  switch (typeOf(value, where)) {
    case json_type::object: {
      od::object object = take(value.get_object(), where);
      return objectToJson(object, where);
    }
    case json_type::array: {
      Json out = Json::array();
      od::array array = take(value.get_array(), where);
      forEachItem(array, where, [&](od::value& item, std::size_t) { out.push_back(toJson(item, where)); });
      return out;
    }
    case json_type::number:
      switch (take(value.get_number_type(), where)) {
        case od::number_type::signed_integer: return take(value.get_int64(), where);
        case od::number_type::unsigned_integer: return take(value.get_uint64(), where);
        default: return take(value.get_double(), where);
      }
    case json_type::string: return std::string(take(value.get_string(), where));
    case json_type::boolean: return take(value.get_bool(), where);
    case json_type::null:
      if (!take(value.is_null(), where)) throw MalformedJson{"invalid literal", where.str()};
      return nullptr;
  }
  fail(where, "unexpected JSON value");
}

od::object documentObject(od::parser& parser, od::document& document, const JsonText& text, const Where& where) {
  if (auto error = parser.allocate(text.size(), text.maxDepth() + 1))
    throw MalformedJson{simdjson::error_message(error), where.str()};
  document = take(parser.iterate(text.data(), text.size(), text.capacity()), where);
  if (take(document.type(), where) != json_type::object) fail(where, "expected a JSON object at the top level");
  return take(document.get_object(), where);
}

// Nothing but whitespace may follow the top-level value.
void expectEnd(od::document& document, const Where& where) {
  const char* location = nullptr;
  if (!document.current_location().get(location)) throw MalformedJson{"content after the top-level value", where.str()};
}

}  // namespace qatfold::program::checked
