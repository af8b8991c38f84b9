// JSON as torch's serializer reads and writes it.
//
// Objects keep their keys in file order (so fields we do not interpret survive
// a round trip in place), integers stay integers, and non-finite floats use
// torch's encoding: the strings "NaN", "Infinity" and "-Infinity". Bare
// tokens NaN/Infinity/-Infinity (Python's json default) are accepted on input.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace qatfold {

using Json = nlohmann::ordered_json;

// Parses `text`; throws Error("malformed JSON: ...") on bad input.
Json parseJson(std::string_view text, std::size_t max_depth = 512);

// Serializes like Python's json.dumps with default separators and
// ensure_ascii, and floats in repr() form: a program we read and do not
// change is written back byte for byte.
std::string dumpJson(const Json& value);
// dumpJson(value) appended to `out`.
void appendJson(std::string& out, const Json& value);
// A JSON string literal of `text` (UTF-8), escaped like json.dumps.
void appendJsonString(std::string& out, std::string_view text);

// Throws Error when arrays and objects in `text` nest deeper than
// `max_depth` (the message names the limit's option). Returns whether a
// bare NaN/Infinity token may appear: an 'N' or 'I' outside strings.
bool checkJsonDepth(std::string_view text, std::size_t max_depth);
// `text` with bare NaN/Infinity tokens outside strings quoted (torch's
// string encoding).
std::string quoteBareNonFinite(std::string_view text);

// Reads a float field: a number, or one of torch's non-finite strings.
// Returns false if `value` is neither.
bool readFloat(const Json& value, double& out);

// The JSON torch writes for a float field.
Json floatToJson(double value);

// Formats a double the way Python's repr() does (shortest round-trip form).
std::string formatFloatLikePython(double value);

}  // namespace qatfold
