#include "qatfold/program/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "qatfold/error.h"

namespace qatfold {

// Quotes bare NaN / Infinity / -Infinity tokens that appear outside strings,
// so the strict parser sees torch's string encoding instead.
std::string quoteBareNonFinite(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      out.push_back(c);
      if (c == '\\' && i + 1 < text.size()) {
        out.push_back(text[++i]);
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      out.push_back(c);
      continue;
    }
    bool replaced = false;
    for (std::string_view token : {"NaN", "Infinity", "-Infinity"}) {
      if (text.substr(i, token.size()) == token) {
        out.push_back('"');
        out.append(token);
        out.push_back('"');
        i += token.size() - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out.push_back(c);
  }
  return out;
}

void appendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  std::size_t i = 0;
  auto emit_unit = [&out](unsigned unit) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "\\u%04x", unit);
    out.append(buf);
  };
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"') {
      out.append("\\\"");
    } else if (c == '\\') {
      out.append("\\\\");
    } else if (c == '\n') {
      out.append("\\n");
    } else if (c == '\r') {
      out.append("\\r");
    } else if (c == '\t') {
      out.append("\\t");
    } else if (c == '\b') {
      out.append("\\b");
    } else if (c == '\f') {
      out.append("\\f");
    } else if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else if (c < 0x80) {
      emit_unit(c);
    } else {
      // Decode one UTF-8 sequence (the parser validated it) and escape it as
      // UTF-16 code units, like Python's ensure_ascii.
      unsigned code = 0;
      int extra = 0;
      if ((c & 0xE0) == 0xC0) {
        code = c & 0x1F;
        extra = 1;
      } else if ((c & 0xF0) == 0xE0) {
        code = c & 0x0F;
        extra = 2;
      } else {
        code = c & 0x07;
        extra = 3;
      }
      for (int k = 0; k < extra && i + 1 < s.size(); ++k) {
        code = (code << 6) | (static_cast<unsigned char>(s[++i]) & 0x3F);
      }
      if (code >= 0x10000) {
        code -= 0x10000;
        emit_unit(0xD800 + (code >> 10));
        emit_unit(0xDC00 + (code & 0x3FF));
      } else {
        emit_unit(code);
      }
    }
    ++i;
  }
  out.push_back('"');
}

void appendJson(std::string& out, const Json& v) {
  switch (v.type()) {
    case Json::value_t::null: out.append("null"); return;
    case Json::value_t::boolean: out.append(v.get<bool>() ? "true" : "false"); return;
    case Json::value_t::number_integer: out.append(std::to_string(v.get<std::int64_t>())); return;
    case Json::value_t::number_unsigned: out.append(std::to_string(v.get<std::uint64_t>())); return;
    case Json::value_t::number_float: {
      double d = v.get<double>();
      if (std::isfinite(d)) {
        out.append(formatFloatLikePython(d));
      } else {
        appendJsonString(out, floatToJson(d).get<std::string>());
      }
      return;
    }
    case Json::value_t::string: appendJsonString(out, v.get_ref<const std::string&>()); return;
    case Json::value_t::array: {
      out.push_back('[');
      bool first = true;
      for (const Json& item : v) {
        if (!first) out.append(", ");
        first = false;
        appendJson(out, item);
      }
      out.push_back(']');
      return;
    }
    case Json::value_t::object: {
      out.push_back('{');
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out.append(", ");
        first = false;
        appendJsonString(out, it.key());
        out.append(": ");
        appendJson(out, it.value());
      }
      out.push_back('}');
      return;
    }
    case Json::value_t::binary:
    case Json::value_t::discarded: throw Error("cannot serialize a binary or discarded JSON value");
  }
}

// A linear scan outside string literals, run before parsing, so the limit
// holds before any allocation or recursion. Brackets inside strings do not
// count; malformed text is the parser's to report, so the scan only ever
// measures depth (and notes letters that only a bare NaN/Infinity explains).
bool checkJsonDepth(std::string_view text, std::size_t max_depth) {
  std::size_t depth = 0;
  bool bare_letters = false;
  const char* const begin = text.data();
  const char* const end = begin + text.size();
  for (const char* p = begin; p < end; ++p) {
    const char c = *p;
    if (c == '"') {
      // Skip the string with memchr: most of a model JSON's bytes are in
      // strings (stack traces). A quote after an odd run of backslashes is
      // escaped; an unterminated string is the parser's to report.
      const char* quote = p;
      while (true) {
        quote = static_cast<const char*>(std::memchr(quote + 1, '"', static_cast<std::size_t>(end - quote - 1)));
        if (quote == nullptr) return bare_letters;
        const char* run = quote;
        while (run > p + 1 && run[-1] == '\\') --run;
        if ((quote - run) % 2 == 0) break;
      }
      p = quote;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        throw Error("JSON nests deeper than the limit of " + std::to_string(max_depth) + " levels",
                    ExceededLimit::kJsonDepth);
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    } else if (c == 'N' || c == 'I') {
      bare_letters = true;
    }
  }
  return bare_letters;
}

Json parseJson(std::string_view text, std::size_t max_depth) {
  const bool bare_letters = checkJsonDepth(text, max_depth);
  try {
    if (bare_letters) {
      std::string fixed = quoteBareNonFinite(text);
      return Json::parse(fixed);
    }
    return Json::parse(text);
  } catch (const Json::exception& e) {
    std::string what = e.what();
    // nlohmann prefixes "[json.exception.parse_error.101] "; keep the useful part.
    auto pos = what.find("] ");
    throw Error("malformed JSON: " + (pos == std::string::npos ? what : what.substr(pos + 2)));
  }
}

std::string dumpJson(const Json& value) {
  std::string out;
  appendJson(out, value);
  return out;
}

bool readFloat(const Json& value, double& out) {
  if (value.is_number()) {
    out = value.get<double>();
    return true;
  }
  if (value.is_string()) {
    const auto& s = value.get_ref<const std::string&>();
    if (s == "NaN") {
      out = std::nan("");
      return true;
    }
    if (s == "Infinity") {
      out = HUGE_VAL;
      return true;
    }
    if (s == "-Infinity") {
      out = -HUGE_VAL;
      return true;
    }
  }
  return false;
}

Json floatToJson(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  return value;
}

std::string formatFloatLikePython(double value) {
  // Shortest round-trip digits from to_chars, laid out by repr()'s rules:
  // positional for decimal exponents in [-4, 16), scientific otherwise.
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  auto result = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  std::string sci(buf, result.ptr);
  bool negative = !sci.empty() && sci[0] == '-';
  if (negative) sci.erase(0, 1);
  auto e_pos = sci.find('e');
  std::string mantissa = sci.substr(0, e_pos);
  int exponent = std::atoi(sci.c_str() + e_pos + 1);
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits.push_back(c);
  }
  std::string out = negative ? "-" : "";
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out += "0.";
      out.append(static_cast<std::size_t>(-exponent - 1), '0');
      out += digits;
    } else if (static_cast<int>(digits.size()) <= exponent + 1) {
      out += digits;
      out.append(static_cast<std::size_t>(exponent + 1 - static_cast<int>(digits.size())), '0');
      out += ".0";
    } else {
      out += digits.substr(0, static_cast<std::size_t>(exponent + 1));
      out += ".";
      out += digits.substr(static_cast<std::size_t>(exponent + 1));
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) {
      out += ".";
      out += digits.substr(1);
    }
    char exp_buf[16];
    std::snprintf(exp_buf, sizeof exp_buf, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out += exp_buf;
  }
  return out;
}

}  // namespace qatfold
