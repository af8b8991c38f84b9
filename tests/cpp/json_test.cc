#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "qatfold/error.h"
#include "qatfold/program/json.h"
#include "qatfold/program/json_text.h"
#include "qatfold/program/schema.h"

namespace qatfold {
namespace {

TEST(Json, KeepsKeyOrderAndUnknownFields) {
  const std::string text = R"({"zeta": 1, "alpha": {"b": 2, "a": 3}, "mid": [true, null, "x"]})";
  EXPECT_EQ(dumpJson(parseJson(text)), text);
}

TEST(Json, IntegersStayIntegers) {
  Json value = parseJson(R"({"i": 5, "f": 5.0, "big": 9007199254740993, "neg": -3})");
  EXPECT_TRUE(value["i"].is_number_integer());
  EXPECT_TRUE(value["f"].is_number_float());
  EXPECT_EQ(value["big"].get<std::int64_t>(), 9007199254740993LL);
  EXPECT_EQ(dumpJson(value), R"({"i": 5, "f": 5.0, "big": 9007199254740993, "neg": -3})");
}

TEST(Json, NonFiniteFloatsUseTorchStrings) {
  Json value = parseJson(R"({"a": "NaN", "b": "Infinity", "c": "-Infinity"})");
  double a = 0, b = 0, c = 0;
  ASSERT_TRUE(readFloat(value["a"], a));
  ASSERT_TRUE(readFloat(value["b"], b));
  ASSERT_TRUE(readFloat(value["c"], c));
  EXPECT_TRUE(std::isnan(a));
  EXPECT_EQ(b, std::numeric_limits<double>::infinity());
  EXPECT_EQ(c, -std::numeric_limits<double>::infinity());
  EXPECT_EQ(floatToJson(std::nan("")), Json("NaN"));
  EXPECT_EQ(floatToJson(-HUGE_VAL), Json("-Infinity"));
  // A float value that is non-finite is written as torch writes it.
  Json direct = Json::array({std::numeric_limits<double>::infinity()});
  EXPECT_EQ(dumpJson(direct), R"(["Infinity"])");
}

TEST(Json, AcceptsBareNonFiniteTokensOutsideStrings) {
  Json value = parseJson(R"({"a": NaN, "b": [Infinity, -Infinity], "s": "NaN stays a string: Infinity"})");
  double a = 0, b = 0;
  ASSERT_TRUE(readFloat(value["a"], a));
  ASSERT_TRUE(readFloat(value["b"][0], b));
  EXPECT_TRUE(std::isnan(a));
  EXPECT_TRUE(std::isinf(b));
  EXPECT_EQ(value["s"], Json("NaN stays a string: Infinity"));
}

TEST(Json, FloatsFormatLikePythonRepr) {
  EXPECT_EQ(formatFloatLikePython(1e-05), "1e-05");
  EXPECT_EQ(formatFloatLikePython(0.1), "0.1");
  EXPECT_EQ(formatFloatLikePython(0.0001), "0.0001");
  EXPECT_EQ(formatFloatLikePython(std::nan("")), "nan");
  EXPECT_EQ(formatFloatLikePython(-HUGE_VAL), "-inf");
  EXPECT_EQ(formatFloatLikePython(1.0), "1.0");
  EXPECT_EQ(formatFloatLikePython(-2.5), "-2.5");
  EXPECT_EQ(formatFloatLikePython(1e16), "1e+16");
  EXPECT_EQ(formatFloatLikePython(123456789012345.0), "123456789012345.0");
  EXPECT_EQ(formatFloatLikePython(0.02628535032272339), "0.02628535032272339");
  EXPECT_EQ(formatFloatLikePython(1.858675568655599e-05), "1.858675568655599e-05");
  EXPECT_EQ(formatFloatLikePython(5e-324), "5e-324");
}

TEST(Json, FloatsRoundTripExactly) {
  for (double value : {0.1, 1.0 / 3.0, 1e-300, 6.02214076e23, -0.0, 2.2250738585072014e-308, 0.018166469410061836}) {
    Json parsed = parseJson(dumpJson(Json(value)));
    EXPECT_EQ(std::signbit(parsed.get<double>()), std::signbit(value));
    EXPECT_EQ(parsed.get<double>(), value) << formatFloatLikePython(value);
  }
}

TEST(Json, EscapesLikePythonEnsureAscii) {
  Json value = Json::array({std::string("tab\there \"q\" \\ caf\xc3\xa9 \xf0\x9f\x98\x80 \x7f")});
  EXPECT_EQ(dumpJson(value), R"(["tab\there \"q\" \\ caf\u00e9 \ud83d\ude00 \u007f"])");
  EXPECT_EQ(parseJson(dumpJson(value)), value);
}

TEST(Json, MalformedInputIsAnError) {
  EXPECT_THROW(parseJson("{\"a\": "), Error);
  EXPECT_THROW(parseJson("[1, 2,]"), Error);
  try {
    parseJson("{oops}");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("malformed JSON", 0), 0u) << e.what();
  }
}

TEST(Json, RefusesPathologicalNesting) {
  std::string deep(1000, '[');
  deep += std::string(1000, ']');
  EXPECT_THROW(parseJson(deep), Error);
  std::string fine(100, '[');
  fine += std::string(100, ']');
  EXPECT_NO_THROW(parseJson(fine));
}

// The schema reader checks every value it passes, also the parts it keeps
// only as slices (node metadata, unknown members), in the one walk that
// reads the record.
TEST(JsonText, MalformedTextIsRejectedWhereverItSits) {
  auto model = [](const std::string& metadata, const std::string& extra) {
    return "{\"graph_module\": {\"graph\": {\"inputs\": [], \"outputs\": [], \"nodes\": [{\"target\": \"t\", "
           "\"inputs\": [], \"outputs\": [], \"metadata\": {\"k\": " +
           metadata +
           "}}], \"tensor_values\": {}}, "
           "\"signature\": {\"input_specs\": [], \"output_specs\": []}}, \"schema_version\": {\"major\": 8, "
           "\"minor\": 0}, \"extra\": " +
           extra + "}";
  };
  ASSERT_NO_THROW(program::ExportedProgram::parse(JsonText::parse(model("\"ok\"", "[1, {\"a\": null}]")), "m"));
  ASSERT_NO_THROW(program::ExportedProgram::parse(
      JsonText::parse(model("\"\\ud83d\\ude00 \\u00e9 \\n\\t\\\"\\\\\\/\"", "{\"\\u0041\": 1e-5}")), "m"));
  for (std::string bad :
       {"tru", "[1 2]", "\"\\q\"", "01", "\"\x01\"", "\"\xff\"", "{\"a\": 1,}", "{\"a\" 1}", "[1, 2,]", "nul", "-",
        "1e", "{oops}", "\"\\ud800\"", "\"\\udc00\"", "\"\\u12G4\"", "{\"\\x\": 1}", "\"\\ud800\\u0041\""}) {
    for (const std::string& text : {model(bad, "1"), model("1", bad)}) {
      try {
        program::ExportedProgram::parse(JsonText::parse(text), "m");
        ADD_FAILURE() << "accepted: " << text;
      } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()).rfind("m: malformed JSON: ", 0), 0u) << bad << " -> " << e.what();
      }
    }
  }
  // A bad key in an object the reader parses (a node's own keys), not only in skipped ones.
  std::string bad_key = model("1", "1");
  bad_key.replace(bad_key.find("\"target\""), 8, "\"tar\\get\"");
  try {
    program::ExportedProgram::parse(JsonText::parse(bad_key), "m");
    ADD_FAILURE() << "accepted: " << bad_key;
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("m: malformed JSON: invalid escape", 0), 0u) << e.what();
  }
  for (const std::string& text : {model("1", "1") + " {}", model("1", "1").substr(0, 80), std::string("{\"a\": ")}) {
    EXPECT_THROW(program::ExportedProgram::parse(JsonText::parse(text), "m"), Error) << text;
  }
}

TEST(JsonText, DepthLimitIsExact) {
  auto nested = [](std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_NO_THROW(JsonText::parse(nested(512), 512));
  try {
    JsonText::parse(nested(513), 512);
    FAIL();
  } catch (const Error& e) {
    // The library says which limit; the CLI names the option (see the malformed-input corpus).
    EXPECT_STREQ(e.what(), "JSON nests deeper than the limit of 512 levels");
    EXPECT_EQ(e.limit(), ExceededLimit::kJsonDepth);
  }
  EXPECT_NO_THROW(JsonText::parse(nested(20), 20));
  EXPECT_THROW(JsonText::parse(nested(21), 20), Error);
}

TEST(JsonText, QuotesBareNonFiniteTokensAndKeepsTheRestInPlace) {
  auto text = JsonText::parse("{\"a\": NaN, \"b\": [-Infinity, \"NaN inside\"], \"c\": 1.5}");
  EXPECT_EQ(text->view(), "{\"a\": \"NaN\", \"b\": [\"-Infinity\", \"NaN inside\"], \"c\": 1.5}");
  EXPECT_EQ(JsonText::parse("[Infinity]")->view(), "[\"Infinity\"]");
  // Text without bare tokens is kept as it came, byte for byte.
  const std::string plain = "{\"x\": \"NaN\",   \"y\": [1,2]}";
  EXPECT_EQ(JsonText::parse(plain)->view(), plain);
}

}  // namespace
}  // namespace qatfold
