#include "qatfold/program/schema.h"

#include <limits>
#include <map>

#include "qatfold/error.h"

namespace qatfold::program {
namespace {

[[noreturn]] void fail(const std::string& where, const std::string& what) { throw Error(where + ": " + what); }

// The single {"key": value} pair of a union object.
std::pair<std::string, const Json*> unionMember(const Json& json, const std::string& where) {
  if (!json.is_object() || json.size() != 1) fail(where, "expected a union with exactly one member");
  return {json.begin().key(), &json.begin().value()};
}

void checkTensorArgument(const Json& json, const std::string& where) {
  auto it = json.is_object() ? json.find("name") : json.end();
  if (!json.is_object() || it == json.end()) fail(where, "missing field 'name'");
  if (!it->is_string()) fail(where + ".name", "expected a string");
}

}  // namespace

std::size_t elementSize(ScalarType type) {
  switch (type) {
    case ScalarType::kUInt8:
    case ScalarType::kInt8:
    case ScalarType::kBool: return 1;
    case ScalarType::kInt16:
    case ScalarType::kFloat16:
    case ScalarType::kBFloat16:
    case ScalarType::kUInt16: return 2;
    case ScalarType::kInt32:
    case ScalarType::kFloat32:
    case ScalarType::kUInt32: return 4;
    case ScalarType::kInt64:
    case ScalarType::kFloat64:
    case ScalarType::kUInt64: return 8;
    case ScalarType::kUnknown: return 0;
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
      {"as_none", ArgShape::kAny},
      {"as_tensor", ArgShape::kObject},
      {"as_tensors", ArgShape::kList},
      {"as_int", ArgShape::kInt},
      {"as_ints", ArgShape::kInts},
      {"as_float", ArgShape::kFloat},
      {"as_floats", ArgShape::kFloats},
      {"as_string", ArgShape::kString},
      {"as_strings", ArgShape::kStrings},
      {"as_sym_int", ArgShape::kObject},
      {"as_sym_ints", ArgShape::kList},
      {"as_scalar_type", ArgShape::kInt},
      {"as_memory_format", ArgShape::kInt},
      {"as_layout", ArgShape::kInt},
      {"as_device", ArgShape::kObject},
      {"as_bool", ArgShape::kBool},
      {"as_bools", ArgShape::kBools},
      {"as_sym_bool", ArgShape::kObject},
      {"as_sym_bools", ArgShape::kList},
      {"as_graph", ArgShape::kObject},
      {"as_optional_tensors", ArgShape::kList},
      {"as_custom_obj", ArgShape::kObject},
      {"as_operator", ArgShape::kString},
      {"as_sym_float", ArgShape::kObject},
      {"as_sym_floats", ArgShape::kList},
      {"as_optional_tensor", ArgShape::kObject},
      {"as_complex", ArgShape::kObject},
      {"as_nested_tensors", ArgShape::kList},
      {"as_int_lists", ArgShape::kList},
      {"as_string_to_argument", ArgShape::kObject},
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
    case ArgShape::kInt:
      ok = payload.is_number_integer();
      expected = "an integer";
      break;
    case ArgShape::kInts:
      ok = all([](const Json& v) { return v.is_number_integer(); });
      expected = "a list of integers";
      break;
    case ArgShape::kFloat:
      ok = isFloatJson(payload);
      expected = "a number";
      break;
    case ArgShape::kFloats:
      ok = all(isFloatJson);
      expected = "a list of numbers";
      break;
    case ArgShape::kString:
      ok = payload.is_string();
      expected = "a string";
      break;
    case ArgShape::kStrings:
      ok = all([](const Json& v) { return v.is_string(); });
      expected = "a list of strings";
      break;
    case ArgShape::kBool:
      ok = payload.is_boolean();
      expected = "true or false";
      break;
    case ArgShape::kBools:
      ok = all([](const Json& v) { return v.is_boolean(); });
      expected = "a list of booleans";
      break;
    case ArgShape::kObject:
      ok = payload.is_object();
      expected = "an object";
      break;
    case ArgShape::kList:
      ok = payload.is_array();
      expected = "a list";
      break;
  }
  if (!ok) fail(where + "." + tag, std::string("expected ") + expected);
}

}  // namespace

Argument::Argument(std::string tag, Json payload, std::string_view source)
    : tag_(std::move(tag)), payload_(std::move(payload)), source_(source) {
  if (tag_ != "as_tensor" || !payload_.is_object() || payload_.size() != 1) return;
  const auto name = payload_.find("name");
  if (name == payload_.end() || !name->is_string()) return;
  tensor_name_ = std::move(name->get_ref<std::string&>());
  payload_ = nullptr;
  compact_ = true;
}

void Argument::validate(const std::string& where) const {
  if (compact_) return;  // a tensor name, well-formed by construction
  checkArgumentShape(tag_, payload_, where);
  const Json* payload = &payload_;
  // The structure of tensor-carrying kinds is checked now, so later stages can trust it.
  if (tag_ == "as_tensor") checkTensorArgument(*payload, where + ".as_tensor");
  if (tag_ == "as_tensors") {
    for (const Json& item : *payload) checkTensorArgument(item, where + ".as_tensors[]");
  }
  if (tag_ == "as_optional_tensors" || tag_ == "as_optional_tensor") {
    const std::string context = where + "." + tag_;
    auto check = [&context](const Json& item) {
      auto [kind, value] = unionMember(item, context);
      if (kind == "as_tensor") checkTensorArgument(*value, context);
      else if (kind != "as_none") fail(context, "unexpected member '" + kind + "'");
    };
    if (tag_ == "as_optional_tensor") {
      check(*payload);
    } else {
      for (const Json& item : *payload) check(item);
    }
  }
}

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
  return tag_ == "as_tensor" || tag_ == "as_tensors" || tag_ == "as_optional_tensors" || tag_ == "as_optional_tensor";
}

std::size_t Argument::tensorReferenceCount() const {
  if (tag_ == "as_tensor" || tag_ == "as_optional_tensor") return 1;
  if ((tag_ == "as_tensors" || tag_ == "as_optional_tensors") && payload_.is_array()) return payload_.size();
  return 0;
}

std::vector<std::optional<std::string>> Argument::tensorReferences() const {
  std::vector<std::optional<std::string>> names;
  forEachTensorReference([&names](const std::string* name) {
    names.push_back(name != nullptr ? std::optional<std::string>(*name) : std::nullopt);
  });
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
    if (compact_) return tensor(*names[0]);
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

TensorMeta TensorMeta::contiguous(ScalarType dtype, const std::vector<std::int64_t>& sizes) {
  TensorMeta meta;
  meta.dtype = dtype;
  meta.sizes = sizes;
  meta.strides.assign(sizes.size(), 1);
  for (std::size_t i = sizes.size(); i-- > 1;)
    meta.strides[i - 1] = meta.strides[i] * std::max<std::int64_t>(sizes[i], 1);
  return meta;
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
    if (__builtin_mul_overflow(static_cast<std::uint64_t>(sizes[i] - 1), static_cast<std::uint64_t>(strides[i]),
                               &step) ||
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

std::optional<std::int64_t> TensorMeta::size(std::size_t dim) const {
  if (!symbolic) return dim < sizes.size() ? std::optional<std::int64_t>(sizes[dim]) : std::nullopt;
  return dim < symbolic_sizes.size() ? symbolic_sizes[dim] : std::nullopt;
}

std::string TensorMeta::sizeText(std::size_t dim) const {
  if (const std::optional<std::int64_t> known = size(dim)) return std::to_string(*known);
  return dim < size_symbols.size() && !size_symbols[dim].empty() ? size_symbols[dim] : std::string("?");
}

std::string TensorMeta::shapeString() const {
  std::string out = "[";
  for (std::size_t i = 0; i < rank(); ++i) out += (i ? ", " : "") + sizeText(i);
  return out + "]";
}

// ---- Programs ----------------------------------------------------------------

ExportedProgram ExportedProgram::shell() const {
  ExportedProgram out;
  out.graph.members = graph.members;
  out.signature.members = signature.members;
  out.module_call_graph = module_call_graph;
  out.opset_version = opset_version;
  out.schema_major = schema_major;
  out.schema_minor = schema_minor;
  out.torch_version = torch_version;
  out.text = text;
  out.graph_begin = graph_begin;
  out.graph_end = graph_end;
  out.signature_begin = signature_begin;
  out.signature_end = signature_end;
  return out;
}

Json ExportedProgram::toJson() const { return parseJson(dump()); }

const PayloadMeta* PayloadConfig::tryFind(const std::string& fqn) const {
  for (const auto& [name, meta] : entries) {
    if (name == fqn) return &meta;
  }
  return nullptr;
}

}  // namespace qatfold::program

namespace qatfold::program {

// ---- Metadata --------------------------------------------------------------------

std::optional<std::string> Metadata::stringValue(std::string_view key) const {
  for (const RawMember& member : source.empty() ? members : membersOf(source)) {
    if (member.key != key) continue;
    if (member.value.empty() || member.value.front() != '"') return std::nullopt;
    Json value = parseJson(member.value);
    if (value.is_string()) return value.get<std::string>();
    return std::nullopt;
  }
  return std::nullopt;
}

Metadata Metadata::subset(std::initializer_list<std::string_view> keys) const {
  Metadata kept;
  const RawMembers all = source.empty() ? members : membersOf(source);
  for (std::string_view key : keys) {
    for (const RawMember& member : all) {
      if (member.key == key) kept.members.push_back(member);
    }
  }
  return kept;
}

}  // namespace qatfold::program
