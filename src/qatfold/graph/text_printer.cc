// The text printer (graph/text.h).
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>

#include "qatfold/graph/text.h"
#include "qatfold/graph/text_syntax.h"
#include "qatfold/program/json.h"
#include "qatfold/program/payload.h"

namespace qatfold::graph {

using program::Argument;
using program::InputKind;
using program::ScalarType;
using text_syntax::isFloatingType;
using text_syntax::kOpsPrefix;
using text_syntax::scalarTypeNamed;

namespace {

std::string typeText(const program::TensorMeta* meta) {
  if (meta == nullptr) return "?";
  return program::scalarTypeName(meta->dtype) + meta->shapeString();
}

// A float in the shortest form that reads back as the same float.
std::string floatText(double value, ScalarType type) {
  char buffer[64];
  auto result = type == ScalarType::kFloat32 ? std::to_chars(buffer, buffer + sizeof buffer, static_cast<float>(value))
                                             : std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

std::string jsonFallback(const Argument& argument) { return "json" + dumpJson(argument.toJson()); }

bool allFinite(const Json& values) {
  for (const Json& value : values) {
    double number = 0;
    if (!readFloat(value, number) || !std::isfinite(number)) return false;
  }
  return true;
}

std::string argumentText(const Argument& argument) {
  const Json& payload = argument.payload();
  const std::string& tag = argument.tag();
  auto list = [&](auto&& item) {
    std::string out = "[";
    for (std::size_t i = 0; i < payload.size(); ++i) out += (i ? ", " : "") + item(payload[i]);
    return out + "]";
  };
  if (tag == "as_none") return "None";
  if (tag == "as_tensor") return "%" + payload.at("name").get<std::string>();
  if (tag == "as_int") return std::to_string(payload.get<std::int64_t>());
  if (tag == "as_bool") return payload.get<bool>() ? "True" : "False";
  if (tag == "as_string") return dumpJson(payload);
  if (tag == "as_float") {
    double value = 0;
    if (readFloat(payload, value) && std::isfinite(value)) return formatFloatLikePython(value);
  }
  if (tag == "as_scalar_type") {
    const std::string name = program::scalarTypeName(static_cast<ScalarType>(payload.get<int>()));
    if (scalarTypeNamed(name)) return name;
  }
  if (payload.is_array() && !payload.empty()) {
    if (tag == "as_tensors") return list([](const Json& t) { return "%" + t.at("name").get<std::string>(); });
    if (tag == "as_optional_tensors") {
      return "?" + list([](const Json& t) {
               return t.contains("as_tensor") ? "%" + t["as_tensor"].at("name").get<std::string>()
                                              : std::string("None");
             });
    }
    if (tag == "as_ints") return list([](const Json& v) { return std::to_string(v.get<std::int64_t>()); });
    if (tag == "as_bools") return list([](const Json& v) { return std::string(v.get<bool>() ? "True" : "False"); });
    if (tag == "as_floats" && allFinite(payload)) {
      return list([](const Json& v) {
        double value = 0;
        readFloat(v, value);
        return formatFloatLikePython(value);
      });
    }
  }
  return jsonFallback(argument);
}

// An operand's argument, with the tensors it names now (its values).
std::string operandText(const Operand& operand) {
  const Argument& argument = operand.argument();
  if (!argument.refersToTensors()) return argumentText(argument);
  std::vector<std::optional<std::string>> names;
  for (const Value* value : operand.values) {
    names.push_back(value ? std::optional<std::string>(value->name()) : std::nullopt);
  }
  return argumentText(argument.withTensorReferences(names));
}

std::string dataText(const Value& placeholder, std::size_t max_elements) {
  const Payload& payload = *placeholder.payload();
  if (!payload.storage || !payload.meta.tensor_meta) return "  # pickled";
  const TensorView view = payload.view();
  const std::int64_t count = view.meta().numel();
  if (count == 0) return "";
  const std::vector<double> values = view.asDoubles();
  const ScalarType type = view.meta().dtype;
  auto element = [&](double value) {
    return isFloatingType(type) ? floatText(value, type) : std::to_string(static_cast<std::int64_t>(value));
  };
  bool uniform = true;
  for (double value : values) uniform = uniform && std::memcmp(&value, &values[0], sizeof value) == 0;
  if (uniform && count > 1) return " = fill(" + element(values[0]) + ")";
  if (static_cast<std::size_t>(count) > max_elements) return "  # " + std::to_string(count) + " elements";
  std::string out = " = [";
  for (std::size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + element(values[i]);
  return out + "]";
}

const char* kindKeyword(InputKind kind) {
  switch (kind) {
    case InputKind::kParameter: return "parameter";
    case InputKind::kBuffer: return "buffer";
    case InputKind::kTensorConstant: return "constant";
    default: return "input";
  }
}

// The program-wide facts a text keeps: the verifiers (the dialect) and the
// value ranges of the symbols sizes are written in.
std::string programHeader(const Graph& graph) {
  const program::ExportedProgram& exported = graph.source().exported;
  // Only a program read from a record has them (a front end's keeps none).
  if (!exported.text || exported.graph_end == 0) return "";
  const Json model = parseJson(exported.text->view());
  std::string out;
  if (model.contains("verifiers")) {
    for (const Json& verifier : model["verifiers"]) out += "verifier " + verifier.get<std::string>() + "\n";
  }
  if (model.contains("range_constraints")) {
    auto bound = [](const Json& value) { return value.is_null() ? std::string("None") : dumpJson(value); };
    for (const auto& [symbol, range] : model["range_constraints"].items()) {
      out += "symbol " + symbol + " = [" + bound(range["min_val"]) + ", " + bound(range["max_val"]) + "]\n";
    }
  }
  return out;
}

}  // namespace

std::string printGraph(const Graph& graph, std::size_t max_elements) {
  std::string out = programHeader(graph);
  for (const Value* placeholder : graph.placeholders()) {
    out += std::string(kindKeyword(placeholder->inputKind())) + " %" + placeholder->name();
    if (placeholder->isConstantTensor()) out += " = " + dumpJson(Json(placeholder->target()));
    if (placeholder->inputKind() == InputKind::kBuffer && placeholder->payload() &&
        placeholder->payload()->section == PayloadSection::kConstants) {
      out += " nonpersistent";
    }
    out += ": " + typeText(placeholder->meta());
    if (placeholder->isConstantTensor()) out += dataText(*placeholder, max_elements);
    out += "\n";
  }
  for (const Node* node : graph.nodes()) {
    std::string outputs, types;
    for (const Value* output : node->outputs()) {
      outputs += (outputs.empty() ? "%" : ", %") + output->name();
      types += (types.empty() ? "" : ", ") + typeText(output->meta());
    }
    std::string_view target = node->target();
    if (target.substr(0, kOpsPrefix.size()) == kOpsPrefix) target.remove_prefix(kOpsPrefix.size());
    out += (outputs.empty() ? "()" : outputs) + " = " + std::string(target) + "(";
    bool keywords = false;
    for (std::size_t i = 0; i < node->operands().size(); ++i) {
      const Operand& operand = node->operands()[i];
      out += i ? ", " : "";
      if (!keywords && operand.keyword_only) {
        keywords = true;
        out += "*, ";
      }
      out += operand.name + "=" + operandText(operand);
    }
    out += ")";
    if (!types.empty()) out += ": " + types;
    if (node->outputs().empty() || node->name() != node->output(0)->name()) out += " @" + node->name();
    out += "\n";
  }
  std::string returned;
  for (const Value* output : graph.outputs())
    returned += (returned.empty() ? " " : ", ") + (output ? "%" + output->name() : std::string("None"));
  return out + "return" + returned + "\n";
}

}  // namespace qatfold::graph
