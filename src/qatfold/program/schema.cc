#include "qatfold/program/schema.h"

#include <limits>
#include <map>

#include "qatfold/error.h"

namespace qatfold::program {
namespace {

[[noreturn]] void fail(const std::string& where, const std::string& what) { throw Error(where + ": " + what); }

const Json& field(const Json& object, const char* key, const std::string& where) {
  if (!object.is_object()) fail(where, "expected an object");
  auto it = object.find(key);
  if (it == object.end()) fail(where, std::string("missing field '") + key + "'");
  return *it;
}

const Json& objectField(const Json& object, const char* key, const std::string& where) {
  const Json& value = field(object, key, where);
  if (!value.is_object()) fail(where + "." + key, "expected an object");
  return value;
}

const Json& arrayField(const Json& object, const char* key, const std::string& where) {
  const Json& value = field(object, key, where);
  if (!value.is_array()) fail(where + "." + key, "expected a list");
  return value;
}

std::string stringField(const Json& object, const char* key, const std::string& where) {
  const Json& value = field(object, key, where);
  if (!value.is_string()) fail(where + "." + key, "expected a string");
  return value.get<std::string>();
}

bool boolField(const Json& object, const char* key, const std::string& where) {
  const Json& value = field(object, key, where);
  if (!value.is_boolean()) fail(where + "." + key, "expected a boolean");
  return value.get<bool>();
}

std::int64_t intValue(const Json& value, const std::string& where) {
  if (!value.is_number_integer()) fail(where, "expected an integer");
  return value.get<std::int64_t>();
}

// A SymInt that is a concrete {"as_int": n}; nullopt when symbolic.
std::optional<std::int64_t> concreteSymInt(const Json& value, const std::string& where) {
  if (!value.is_object() || value.size() != 1) fail(where, "expected a SymInt union");
  auto it = value.find("as_int");
  if (it == value.end()) return std::nullopt;
  return intValue(*it, where);
}

// A JSON list of the items' toJson().
template <class T>
Json jsonList(const std::vector<T>& items) {
  Json list = Json::array();
  for (const T& item : items) list.push_back(item.toJson());
  return list;
}

Json symIntList(const std::vector<std::int64_t>& values) {
  Json list = Json::array();
  for (std::int64_t v : values) list.push_back(Json{{"as_int", v}});
  return list;
}

// The single {"key": value} pair of a union object.
std::pair<std::string, const Json*> unionMember(const Json& json, const std::string& where) {
  if (!json.is_object() || json.size() != 1) fail(where, "expected a union with exactly one member");
  return {json.begin().key(), &json.begin().value()};
}

std::string tensorArgumentName(const Json& json, const std::string& where) {
  return stringField(json, "name", where);
}

}  // namespace

std::size_t elementSize(ScalarType type) {
  switch (type) {
    case ScalarType::kUInt8:
    case ScalarType::kInt8:
    case ScalarType::kBool:
      return 1;
    case ScalarType::kInt16:
    case ScalarType::kFloat16:
    case ScalarType::kBFloat16:
    case ScalarType::kUInt16:
      return 2;
    case ScalarType::kInt32:
    case ScalarType::kFloat32:
    case ScalarType::kUInt32:
      return 4;
    case ScalarType::kInt64:
    case ScalarType::kFloat64:
    case ScalarType::kUInt64:
      return 8;
    case ScalarType::kUnknown:
      return 0;
  }
  return 0;
}

std::string scalarTypeName(ScalarType type) {
  switch (type) {
    case ScalarType::kUInt8: return "uint8";
    case ScalarType::kInt8: return "int8";
    case ScalarType::kInt16: return "int16";
    case ScalarType::kInt32: return "int32";
    case ScalarType::kInt64: return "int64";
    case ScalarType::kFloat16: return "float16";
    case ScalarType::kFloat32: return "float32";
    case ScalarType::kFloat64: return "float64";
    case ScalarType::kBool: return "bool";
    case ScalarType::kBFloat16: return "bfloat16";
    case ScalarType::kUInt16: return "uint16";
    case ScalarType::kUInt32: return "uint32";
    case ScalarType::kUInt64: return "uint64";
    case ScalarType::kUnknown: break;
  }
  return "dtype" + std::to_string(static_cast<int>(type));
}

// ---- Argument -------------------------------------------------------------

namespace {

// The JSON shape each Argument kind of torch's schema takes.
enum class ArgShape { kAny, kInt, kInts, kFloat, kFloats, kString, kStrings, kBool, kBools, kObject, kList };

ArgShape argumentShape(const std::string& tag, const std::string& where) {
  static const std::map<std::string, ArgShape, std::less<>> kShapes = {
      {"as_none", ArgShape::kAny},          {"as_tensor", ArgShape::kObject},
      {"as_tensors", ArgShape::kList},      {"as_int", ArgShape::kInt},
      {"as_ints", ArgShape::kInts},         {"as_float", ArgShape::kFloat},
      {"as_floats", ArgShape::kFloats},     {"as_string", ArgShape::kString},
      {"as_strings", ArgShape::kStrings},   {"as_sym_int", ArgShape::kObject},
      {"as_sym_ints", ArgShape::kList},     {"as_scalar_type", ArgShape::kInt},
      {"as_memory_format", ArgShape::kInt}, {"as_layout", ArgShape::kInt},
      {"as_device", ArgShape::kObject},     {"as_bool", ArgShape::kBool},
      {"as_bools", ArgShape::kBools},       {"as_sym_bool", ArgShape::kObject},
      {"as_sym_bools", ArgShape::kList},    {"as_graph", ArgShape::kObject},
      {"as_optional_tensors", ArgShape::kList}, {"as_custom_obj", ArgShape::kObject},
      {"as_operator", ArgShape::kString},   {"as_sym_float", ArgShape::kObject},
      {"as_sym_floats", ArgShape::kList},   {"as_optional_tensor", ArgShape::kObject},
      {"as_complex", ArgShape::kObject},    {"as_nested_tensors", ArgShape::kList},
      {"as_int_lists", ArgShape::kList},    {"as_string_to_argument", ArgShape::kObject},
      {"as_float_lists", ArgShape::kList},
  };
  auto it = kShapes.find(tag);
  if (it == kShapes.end()) fail(where, "unknown argument kind '" + tag + "'");
  return it->second;
}

bool isFloatJson(const Json& value) {
  double ignored = 0;
  return readFloat(value, ignored);
}

void checkArgumentShape(const std::string& tag, const Json& payload, const std::string& where) {
  auto all = [&payload](auto&& predicate) {
    if (!payload.is_array()) return false;
    for (const Json& item : payload) {
      if (!predicate(item)) return false;
    }
    return true;
  };
  bool ok = true;
  const char* expected = "";
  switch (argumentShape(tag, where)) {
    case ArgShape::kAny: break;
    case ArgShape::kInt: ok = payload.is_number_integer(); expected = "an integer"; break;
    case ArgShape::kInts: ok = all([](const Json& v) { return v.is_number_integer(); }); expected = "a list of integers"; break;
    case ArgShape::kFloat: ok = isFloatJson(payload); expected = "a number"; break;
    case ArgShape::kFloats: ok = all(isFloatJson); expected = "a list of numbers"; break;
    case ArgShape::kString: ok = payload.is_string(); expected = "a string"; break;
    case ArgShape::kStrings: ok = all([](const Json& v) { return v.is_string(); }); expected = "a list of strings"; break;
    case ArgShape::kBool: ok = payload.is_boolean(); expected = "true or false"; break;
    case ArgShape::kBools: ok = all([](const Json& v) { return v.is_boolean(); }); expected = "a list of booleans"; break;
    case ArgShape::kObject: ok = payload.is_object(); expected = "an object"; break;
    case ArgShape::kList: ok = payload.is_array(); expected = "a list"; break;
  }
  if (!ok) fail(where + "." + tag, std::string("expected ") + expected);
}

}  // namespace

Argument Argument::parse(const Json& json, const std::string& where) {
  auto [tag, payload] = unionMember(json, where);
  checkArgumentShape(tag, *payload, where);
  Argument arg(tag, *payload);
  // Validate the structure of tensor-carrying kinds now, so later stages can trust it.
  if (arg.refersToTensors()) (void)arg.tensorReferences();
  if (tag == "as_tensor") tensorArgumentName(*payload, where + ".as_tensor");
  if (tag == "as_tensors") {
    if (!payload->is_array()) fail(where + ".as_tensors", "expected a list");
    for (const Json& item : *payload) tensorArgumentName(item, where + ".as_tensors[]");
  }
  if (tag == "as_optional_tensors" || tag == "as_optional_tensor") {
    const std::string context = where + "." + tag;
    auto check = [&context](const Json& item) {
      auto [kind, value] = unionMember(item, context);
      if (kind == "as_tensor") tensorArgumentName(*value, context);
      else if (kind != "as_none") fail(context, "unexpected member '" + kind + "'");
    };
    if (tag == "as_optional_tensor") {
      check(*payload);
    } else {
      if (!payload->is_array()) fail(where + "." + tag, "expected a list");
      for (const Json& item : *payload) check(item);
    }
  }
  return arg;
}

Json Argument::toJson() const { return Json{{tag_, payload_}}; }

std::optional<std::int64_t> Argument::asInt() const {
  if (tag_ == "as_int" && payload_.is_number_integer()) return payload_.get<std::int64_t>();
  return std::nullopt;
}

std::optional<double> Argument::asFloat() const {
  double value = 0;
  if (tag_ == "as_float" && readFloat(payload_, value)) return value;
  if (tag_ == "as_int" && payload_.is_number_integer()) return static_cast<double>(payload_.get<std::int64_t>());
  return std::nullopt;
}

std::optional<bool> Argument::asBool() const {
  if (tag_ == "as_bool" && payload_.is_boolean()) return payload_.get<bool>();
  return std::nullopt;
}

std::optional<std::vector<std::int64_t>> Argument::asInts() const {
  if (tag_ != "as_ints" || !payload_.is_array()) return std::nullopt;
  std::vector<std::int64_t> values;
  for (const Json& item : payload_) {
    if (!item.is_number_integer()) return std::nullopt;
    values.push_back(item.get<std::int64_t>());
  }
  return values;
}

std::optional<ScalarType> Argument::asScalarType() const {
  if (tag_ == "as_scalar_type" && payload_.is_number_integer()) return static_cast<ScalarType>(payload_.get<int>());
  return std::nullopt;
}

bool Argument::refersToTensors() const {
  return tag_ == "as_tensor" || tag_ == "as_tensors" || tag_ == "as_optional_tensors" ||
         tag_ == "as_optional_tensor";
}

std::vector<std::optional<std::string>> Argument::tensorReferences() const {
  std::vector<std::optional<std::string>> names;
  auto optional_entry = [&names](const Json& item) {
    if (!item.is_object() || item.size() != 1) throw Error("malformed optional tensor argument");
    if (item.begin().key() == "as_tensor" && item.begin().value().is_object() &&
        item.begin().value().contains("name") && item.begin().value()["name"].is_string()) {
      names.emplace_back(item.begin().value()["name"].get<std::string>());
    } else {
      names.emplace_back(std::nullopt);
    }
  };
  auto tensor_entry = [&names](const Json& item) {
    if (!item.is_object() || !item.contains("name") || !item["name"].is_string()) {
      throw Error("malformed tensor argument");
    }
    names.emplace_back(item["name"].get<std::string>());
  };
  if (tag_ == "as_tensor") {
    tensor_entry(payload_);
  } else if (tag_ == "as_tensors") {
    if (!payload_.is_array()) throw Error("malformed tensor list argument");
    for (const Json& item : payload_) tensor_entry(item);
  } else if (tag_ == "as_optional_tensor") {
    optional_entry(payload_);
  } else if (tag_ == "as_optional_tensors") {
    if (!payload_.is_array()) throw Error("malformed optional tensor list argument");
    for (const Json& item : payload_) optional_entry(item);
  }
  return names;
}

Argument Argument::withTensorReferences(const std::vector<std::optional<std::string>>& names) const {
  auto optional_json = [](const std::optional<std::string>& name) -> Json {
    if (name) return Json{{"as_tensor", Json{{"name", *name}}}};
    return Json{{"as_none", true}};
  };
  Json payload = payload_;
  if (tag_ == "as_tensor") {
    if (names.size() != 1 || !names[0]) throw Error("as_tensor needs exactly one tensor");
    payload["name"] = *names[0];
  } else if (tag_ == "as_tensors") {
    payload = Json::array();
    for (const auto& name : names) {
      if (!name) throw Error("as_tensors cannot hold None");
      payload.push_back(Json{{"name", *name}});
    }
  } else if (tag_ == "as_optional_tensor") {
    if (names.size() != 1) throw Error("as_optional_tensor needs exactly one entry");
    payload = optional_json(names[0]);
  } else if (tag_ == "as_optional_tensors") {
    payload = Json::array();
    for (const auto& name : names) payload.push_back(optional_json(name));
  }
  return Argument(tag_, std::move(payload));
}

// ---- TensorMeta -----------------------------------------------------------

TensorMeta TensorMeta::parse(const Json& json, const std::string& where) {
  TensorMeta meta;
  meta.raw = json;
  meta.dtype = static_cast<ScalarType>(intValue(field(json, "dtype", where), where + ".dtype"));
  meta.requires_grad = boolField(json, "requires_grad", where);
  const Json& sizes = arrayField(json, "sizes", where);
  const Json& strides = arrayField(json, "strides", where);
  if (sizes.size() != strides.size()) fail(where, "sizes and strides have different lengths");
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    auto size = concreteSymInt(sizes[i], where + ".sizes");
    auto stride = concreteSymInt(strides[i], where + ".strides");
    if (!size || !stride) {
      meta.symbolic = true;
      continue;
    }
    if (*size < 0) fail(where + ".sizes", "negative size " + std::to_string(*size));
    meta.sizes.push_back(*size);
    meta.strides.push_back(*stride);
  }
  std::int64_t elements = 1;
  for (std::int64_t size : meta.sizes) {
    if (__builtin_mul_overflow(elements, size, &elements)) fail(where + ".sizes", "element count overflows");
  }
  auto offset = concreteSymInt(field(json, "storage_offset", where), where + ".storage_offset");
  if (!offset) {
    meta.symbolic = true;
  } else {
    if (*offset < 0) fail(where + ".storage_offset", "negative storage offset");
    meta.storage_offset = *offset;
  }
  if (meta.symbolic) {
    meta.sizes.clear();
    meta.strides.clear();
  }
  return meta;
}

TensorMeta TensorMeta::contiguous(ScalarType dtype, const std::vector<std::int64_t>& sizes) {
  TensorMeta meta;
  meta.dtype = dtype;
  meta.sizes = sizes;
  meta.strides.assign(sizes.size(), 1);
  for (std::size_t i = sizes.size(); i-- > 1;) meta.strides[i - 1] = meta.strides[i] * std::max<std::int64_t>(sizes[i], 1);
  meta.raw = Json{{"dtype", static_cast<int>(dtype)},
                  {"sizes", Json::array()},
                  {"requires_grad", false},
                  {"device", Json{{"type", "cpu"}, {"index", nullptr}}},
                  {"strides", Json::array()},
                  {"storage_offset", Json{{"as_int", 0}}},
                  {"layout", 7}};
  return meta;
}

Json TensorMeta::toJson() const {
  if (symbolic) return raw;
  Json json = raw;
  json["dtype"] = static_cast<int>(dtype);
  json["sizes"] = symIntList(sizes);
  json["requires_grad"] = requires_grad;
  json["strides"] = symIntList(strides);
  json["storage_offset"] = Json{{"as_int", storage_offset}};
  return json;
}

std::int64_t TensorMeta::numel() const {
  std::int64_t n = 1;
  for (std::int64_t s : sizes) n *= s;
  return n;
}

std::uint64_t TensorMeta::requiredStorageBytes() const {
  if (symbolic) throw Error("tensor has a symbolic shape");
  const std::size_t element = elementSize(dtype);
  if (element == 0) throw Error("unsupported dtype " + scalarTypeName(dtype));
  std::uint64_t last = static_cast<std::uint64_t>(storage_offset);
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] == 0) return 0;
    if (strides[i] < 0) throw Error("negative stride");
    std::uint64_t step = 0;
    if (__builtin_mul_overflow(static_cast<std::uint64_t>(sizes[i] - 1), static_cast<std::uint64_t>(strides[i]), &step) ||
        __builtin_add_overflow(last, step, &last)) {
      throw Error("tensor extent overflows");
    }
  }
  std::uint64_t bytes = 0;
  if (__builtin_add_overflow(last, 1, &last) || __builtin_mul_overflow(last, element, &bytes)) {
    throw Error("tensor extent overflows");
  }
  return bytes;
}

std::string TensorMeta::shapeString() const {
  if (symbolic) return "[symbolic]";
  std::string out = "[";
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(sizes[i]);
  }
  return out + "]";
}

// ---- Node and graph --------------------------------------------------------

namespace {

// `object` with the members named in `owned` replaced by null: what a
// struct's `raw` keeps when its toJson() writes those members itself. The
// null placeholders hold each member's place, so the output keeps the
// input's key order without a second copy of the (large) members.
Json withoutMembers(const Json& object, std::initializer_list<const char*> owned) {
  Json kept = Json::object();
  for (auto it = object.begin(); it != object.end(); ++it) {
    bool is_owned = false;
    for (const char* key : owned) is_owned = is_owned || it.key() == key;
    kept[it.key()] = is_owned ? Json(nullptr) : it.value();
  }
  return kept;
}

}  // namespace

Json NamedArgument::toJson() const {
  Json json = raw;
  json["name"] = name;
  json["arg"] = arg.toJson();
  return json;
}

Json Node::toJson() const {
  Json json = raw;
  json["target"] = target;
  json["inputs"] = jsonList(inputs);
  json["outputs"] = jsonList(outputs);
  json["metadata"] = metadata;
  return json;
}

InputSpec InputSpec::parse(const Json& json, const std::string& where) {
  InputSpec spec;
  spec.raw = json;
  auto [kind, body] = unionMember(json, where);
  const std::string inner = where + "." + kind;
  if (kind == "user_input") {
    spec.kind = InputKind::kUserInput;
    Argument arg = Argument::parse(field(*body, "arg", inner), inner + ".arg");
    auto refs = arg.refersToTensors() ? arg.tensorReferences() : std::vector<std::optional<std::string>>{};
    if (arg.is("as_tensor")) spec.name = *refs[0];
    else if (arg.payload().is_object() && arg.payload().contains("name") && arg.payload()["name"].is_string())
      spec.name = arg.payload()["name"].get<std::string>();
    else if (arg.payload().is_object() && arg.payload().contains("as_name") && arg.payload()["as_name"].is_string())
      spec.name = arg.payload()["as_name"].get<std::string>();
  } else if (kind == "parameter") {
    spec.kind = InputKind::kParameter;
    spec.name = tensorArgumentName(objectField(*body, "arg", inner), inner + ".arg");
    spec.target = stringField(*body, "parameter_name", inner);
  } else if (kind == "buffer") {
    spec.kind = InputKind::kBuffer;
    spec.name = tensorArgumentName(objectField(*body, "arg", inner), inner + ".arg");
    spec.target = stringField(*body, "buffer_name", inner);
  } else if (kind == "tensor_constant") {
    spec.kind = InputKind::kTensorConstant;
    spec.name = tensorArgumentName(objectField(*body, "arg", inner), inner + ".arg");
    spec.target = stringField(*body, "tensor_constant_name", inner);
  } else if (kind == "custom_obj") {
    spec.kind = InputKind::kCustomObject;
    spec.name = stringField(objectField(*body, "arg", inner), "name", inner + ".arg");
    spec.target = stringField(*body, "custom_obj_name", inner);
  } else if (kind == "token") {
    spec.kind = InputKind::kToken;
    spec.name = stringField(objectField(*body, "arg", inner), "name", inner + ".arg");
  } else if (kind == "constant_input") {
    spec.kind = InputKind::kConstantInput;
    spec.name = stringField(*body, "name", inner);
  } else {
    fail(where, "unknown input spec kind '" + kind + "'");
  }
  return spec;
}

Json InputSpec::toJson() const { return raw; }

OutputSpec OutputSpec::parse(const Json& json, const std::string& where) {
  OutputSpec spec;
  spec.raw = json;
  auto [kind, body] = unionMember(json, where);
  spec.kind = kind;
  spec.arg = Argument::parse(field(*body, "arg", where + "." + kind), where + "." + kind + ".arg");
  return spec;
}

Json OutputSpec::toJson() const {
  Json json = raw;
  json[kind]["arg"] = arg.toJson();
  return json;
}

Json Graph::toJson() const {
  Json json = raw;
  json["inputs"] = jsonList(inputs);
  json["outputs"] = jsonList(outputs);
  json["nodes"] = jsonList(nodes);
  Json values = Json::object();
  for (const auto& [name, meta] : tensor_values) values[name] = meta.toJson();
  json["tensor_values"] = std::move(values);
  return json;
}

Json GraphSignature::toJson() const {
  Json json = raw;
  json["input_specs"] = jsonList(input_specs);
  json["output_specs"] = jsonList(output_specs);
  return json;
}

ExportedProgram ExportedProgram::parse(Json json, const std::string& where) {
  ExportedProgram program;
  if (!json.is_object()) fail(where, "expected a JSON object at the top level");
  const Json& version = objectField(json, "schema_version", where);
  program.schema_major = static_cast<int>(intValue(field(version, "major", where + ".schema_version"), where + ".schema_version.major"));
  program.schema_minor = static_cast<int>(intValue(field(version, "minor", where + ".schema_version"), where + ".schema_version.minor"));
  if (program.schema_major != kSchemaMajorVersion) {
    fail(where, "unsupported schema major version " + std::to_string(program.schema_major) + " (this qatfold reads " +
                    std::to_string(kSchemaMajorVersion) + ")");
  }
  if (auto it = json.find("torch_version"); it != json.end() && it->is_string()) program.torch_version = it->get<std::string>();

  const std::string gm_where = where + ": graph_module";
  objectField(objectField(json, "graph_module", where), "graph", gm_where);  // both checked here
  Json& graph_module = json["graph_module"];
  Json& graph = graph_module["graph"];
  const std::string g_where = gm_where + ".graph";
  program.graph.raw = withoutMembers(graph, {"inputs", "outputs", "nodes", "tensor_values"});
  const Json& inputs = arrayField(graph, "inputs", g_where);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    program.graph.inputs.push_back(Argument::parse(inputs[i], g_where + ".inputs[" + std::to_string(i) + "]"));
  }
  const Json& outputs = arrayField(graph, "outputs", g_where);
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    program.graph.outputs.push_back(Argument::parse(outputs[i], g_where + ".outputs[" + std::to_string(i) + "]"));
  }
  arrayField(graph, "nodes", g_where);
  Json& nodes = graph["nodes"];
  program.graph.nodes.reserve(nodes.size());
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const std::string n_where = g_where + ".nodes[" + std::to_string(i) + "]";
    Json& n = nodes[i];
    Node node;
    node.raw = withoutMembers(n, {"target", "inputs", "outputs", "metadata"});
    node.target = stringField(n, "target", n_where);
    const Json& node_inputs = arrayField(n, "inputs", n_where);
    for (std::size_t k = 0; k < node_inputs.size(); ++k) {
      const std::string a_where = n_where + ".inputs[" + std::to_string(k) + "]";
      NamedArgument named;
      named.raw = withoutMembers(node_inputs[k], {"name", "arg"});
      named.name = stringField(node_inputs[k], "name", a_where);
      named.arg = Argument::parse(field(node_inputs[k], "arg", a_where), a_where + ".arg");
      node.inputs.push_back(std::move(named));
    }
    const Json& node_outputs = arrayField(n, "outputs", n_where);
    for (std::size_t k = 0; k < node_outputs.size(); ++k) {
      node.outputs.push_back(Argument::parse(node_outputs[k], n_where + ".outputs[" + std::to_string(k) + "]"));
    }
    // Moved, not copied: the document is ours, and nothing reads it again.
    node.metadata = n.contains("metadata") ? std::move(n["metadata"]) : Json::object();
    if (!node.metadata.is_object()) fail(n_where + ".metadata", "expected an object");
    program.graph.nodes.push_back(std::move(node));
  }
  const Json& tensor_values = objectField(graph, "tensor_values", g_where);
  for (auto it = tensor_values.begin(); it != tensor_values.end(); ++it) {
    program.graph.tensor_values.emplace_back(it.key(),
                                             TensorMeta::parse(it.value(), g_where + ".tensor_values." + it.key()));
  }

  const Json& signature = objectField(graph_module, "signature", gm_where);
  const std::string s_where = gm_where + ".signature";
  program.signature.raw = withoutMembers(signature, {"input_specs", "output_specs"});
  const Json& input_specs = arrayField(signature, "input_specs", s_where);
  for (std::size_t i = 0; i < input_specs.size(); ++i) {
    program.signature.input_specs.push_back(
        InputSpec::parse(input_specs[i], s_where + ".input_specs[" + std::to_string(i) + "]"));
  }
  const Json& output_specs = arrayField(signature, "output_specs", s_where);
  for (std::size_t i = 0; i < output_specs.size(); ++i) {
    program.signature.output_specs.push_back(
        OutputSpec::parse(output_specs[i], s_where + ".output_specs[" + std::to_string(i) + "]"));
  }
  if (program.signature.input_specs.size() != program.graph.inputs.size()) {
    fail(s_where, "has " + std::to_string(program.signature.input_specs.size()) + " input specs for " +
                      std::to_string(program.graph.inputs.size()) + " graph inputs");
  }
  if (auto it = graph_module.find("module_call_graph"); it != graph_module.end()) {
    if (!it->is_array()) fail(gm_where + ".module_call_graph", "expected a list");
    for (const Json& entry : *it) {
      program.module_call_graph.push_back(
          {stringField(entry, "fqn", gm_where + ".module_call_graph[]"), entry.value("signature", Json())});
    }
  }
  if (auto it = json.find("opset_version"); it != json.end()) {
    if (!it->is_object()) fail(where + ": opset_version", "expected an object");
    for (auto op = it->begin(); op != it->end(); ++op) {
      program.opset_version.emplace_back(op.key(), intValue(op.value(), where + ": opset_version." + op.key()));
    }
  }
  if (program.signature.output_specs.size() != program.graph.outputs.size()) {
    fail(s_where, "has " + std::to_string(program.signature.output_specs.size()) + " output specs for " +
                      std::to_string(program.graph.outputs.size()) + " graph outputs");
  }
  // The rest of the document, without the graph and the signature that
  // toJson() writes from the typed parts.
  graph = nullptr;
  graph_module["signature"] = nullptr;
  program.raw = std::move(json);
  return program;
}

ExportedProgram ExportedProgram::shell() const {
  ExportedProgram out;
  out.graph.raw = graph.raw;
  out.signature.raw = signature.raw;
  out.module_call_graph = module_call_graph;
  out.opset_version = opset_version;
  out.schema_major = schema_major;
  out.schema_minor = schema_minor;
  out.torch_version = torch_version;
  out.raw = raw;
  return out;
}

Json ExportedProgram::toJson() const {
  Json json = raw;
  json["graph_module"]["graph"] = graph.toJson();
  json["graph_module"]["signature"] = signature.toJson();
  return json;
}

// ---- Payload configs --------------------------------------------------------

PayloadMeta PayloadMeta::parse(const Json& json, const std::string& where) {
  PayloadMeta meta;
  meta.raw = json;
  meta.path_name = stringField(json, "path_name", where);
  meta.is_param = boolField(json, "is_param", where);
  meta.use_pickle = boolField(json, "use_pickle", where);
  const Json& tensor_meta = field(json, "tensor_meta", where);
  if (!tensor_meta.is_null()) meta.tensor_meta = TensorMeta::parse(tensor_meta, where + ".tensor_meta");
  if (!meta.use_pickle && !meta.tensor_meta) fail(where, "raw payload without tensor_meta");
  if (meta.path_name.empty() || meta.path_name.find('/') != std::string::npos ||
      meta.path_name.find("..") != std::string::npos) {
    fail(where + ".path_name", "'" + meta.path_name + "' is not a plain record name");
  }
  return meta;
}

Json PayloadMeta::toJson() const {
  Json json = raw;
  json["path_name"] = path_name;
  json["is_param"] = is_param;
  json["use_pickle"] = use_pickle;
  json["tensor_meta"] = tensor_meta ? tensor_meta->toJson() : Json(nullptr);
  return json;
}

PayloadConfig PayloadConfig::parse(const Json& json, const std::string& where) {
  PayloadConfig config;
  config.raw = json;
  if (!json.is_object()) fail(where, "expected a JSON object at the top level");
  const Json& entries = field(json, "config", where);
  if (!entries.is_object()) fail(where + ": config", "expected an object");
  for (auto it = entries.begin(); it != entries.end(); ++it) {
    config.entries.emplace_back(it.key(), PayloadMeta::parse(it.value(), where + ": config." + it.key()));
  }
  return config;
}

Json PayloadConfig::toJson() const {
  Json json = raw.is_object() ? raw : Json::object();
  Json entries_json = Json::object();
  for (const auto& [fqn, meta] : entries) entries_json[fqn] = meta.toJson();
  json["config"] = std::move(entries_json);
  return json;
}

const PayloadMeta* PayloadConfig::tryFind(const std::string& fqn) const {
  for (const auto& [name, meta] : entries) {
    if (name == fqn) return &meta;
  }
  return nullptr;
}

}  // namespace qatfold::program
