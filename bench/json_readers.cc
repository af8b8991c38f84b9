// Reads a PT2 model JSON with each candidate reader and reports time and
// memory, for choosing the core's JSON reader by measurement.
//
//   json_readers READER FILE [REPEAT]
//   READER: nlohmann (today's: ordered_json DOM), nlohmann-callback (the
//           same with a parse callback, how the depth limit was enforced
//           until the linear pre-scan replaced it), simdjson-dom,
//           simdjson-ondemand (walks every value, keeping raw slices),
//           rapidjson (DOM, full-precision doubles)
//
// Each run parses the file and walks every value (counting them and summing
// number values, so nothing is optimized away). Prints the median time of
// REPEAT runs, the values seen, and the process's peak RSS; bench/json_readers.py
// runs each reader in its own process so the peaks are comparable.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <rapidjson/document.h>
#include <simdjson.h>
#include <nlohmann/json.hpp>

namespace {

struct Walk {
  std::size_t values = 0;
  double sum = 0;
};

void walkNlohmann(const nlohmann::ordered_json& j, Walk& w) {
  ++w.values;
  if (j.is_object() || j.is_array()) {
    for (const auto& item : j) walkNlohmann(item, w);
  } else if (j.is_number()) {
    w.sum += j.get<double>();
  }
}

void walkSimdjsonDom(simdjson::dom::element e, Walk& w) {
  ++w.values;
  switch (e.type()) {
    case simdjson::dom::element_type::OBJECT:
      for (auto field : e.get_object()) walkSimdjsonDom(field.value, w);
      break;
    case simdjson::dom::element_type::ARRAY:
      for (auto item : e.get_array()) walkSimdjsonDom(item, w);
      break;
    case simdjson::dom::element_type::DOUBLE:
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64: w.sum += double(e.get_double()); break;
    default: break;
  }
}

void walkOnDemand(simdjson::ondemand::value v, Walk& w, std::size_t& raw_bytes) {
  ++w.values;
  switch (v.type()) {
    case simdjson::ondemand::json_type::object:
      for (auto field : v.get_object()) walkOnDemand(field.value(), w, raw_bytes);
      break;
    case simdjson::ondemand::json_type::array:
      for (auto item : v.get_array()) walkOnDemand(item.value(), w, raw_bytes);
      break;
    case simdjson::ondemand::json_type::number: w.sum += double(v.get_double()); break;
    default: {
      std::string_view raw = v.raw_json_token();  // a slice of the input
      raw_bytes += raw.size();
      break;
    }
  }
}

void walkRapid(const rapidjson::Value& v, Walk& w) {
  ++w.values;
  if (v.IsObject()) {
    for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) walkRapid(it->value, w);
  } else if (v.IsArray()) {
    for (const auto& item : v.GetArray()) walkRapid(item, w);
  } else if (v.IsNumber()) {
    w.sum += v.GetDouble();
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: json_readers READER FILE [REPEAT]\n");
    return 2;
  }
  const std::string reader = argv[1];
  std::ifstream in(argv[2], std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  const int repeat = argc > 3 ? std::atoi(argv[3]) : 9;
  const simdjson::padded_string padded(text);
  simdjson::dom::parser dom_parser;
  simdjson::ondemand::parser ondemand_parser;

  std::vector<double> ms;
  Walk walk;
  for (int i = 0; i < repeat; ++i) {
    walk = {};
    auto start = std::chrono::steady_clock::now();
    if (reader == "nlohmann") {
      auto doc = nlohmann::ordered_json::parse(text);
      walkNlohmann(doc, walk);
    } else if (reader == "nlohmann-callback") {
      std::size_t depth = 0;
      auto doc = nlohmann::ordered_json::parse(text, [&](int, nlohmann::ordered_json::parse_event_t event, auto&) {
        using Event = nlohmann::ordered_json::parse_event_t;
        if (event == Event::object_start || event == Event::array_start) ++depth;
        if (event == Event::object_end || event == Event::array_end) --depth;
        return depth < 100000;
      });
      walkNlohmann(doc, walk);
    } else if (reader == "simdjson-dom") {
      simdjson::dom::element doc = dom_parser.parse(padded);
      walkSimdjsonDom(doc, walk);
    } else if (reader == "simdjson-ondemand") {
      std::size_t raw = 0;
      auto doc = ondemand_parser.iterate(padded);
      walkOnDemand(doc.get_value(), walk, raw);
    } else if (reader == "rapidjson") {
      rapidjson::Document doc;
      doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.data(), text.size());
      if (doc.HasParseError()) return 1;
      walkRapid(doc, walk);
    } else {
      std::fprintf(stderr, "unknown reader %s\n", reader.c_str());
      return 2;
    }
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("%s %.3f ms %zu values %.6g sum %.1f MiB peak\n", reader.c_str(), ms[ms.size() / 2], walk.values,
              walk.sum, usage.ru_maxrss / 1024.0);
  return 0;
}
