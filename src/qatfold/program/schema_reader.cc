// Reads the schema's records from a JsonText with simdjson's On-Demand API:
// the fields the passes interpret become typed values, the rest stays as
// slices of the text (see schema.h).
//
// On-Demand checks only what it is asked to read, so the reader walks every
// value it keeps as a slice too (validate()): each record is fully checked
// in the one pass that reads it, with no document tree in memory.
#include <simdjson.h>

#include "qatfold/error.h"
#include "qatfold/program/schema.h"

namespace qatfold::program {
namespace {

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

[[noreturn]] void fail(const Where& where, const std::string& what) { throw Error(where.str() + ": " + what); }

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

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\n' || text.back() == '\r' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  return text;
}

json_type typeOf(od::value& value, const Where& where) { return take(value.type(), where); }

// The key of `field` as the text spells it, between the quotes.
std::string_view keyOf(od::field& field) {
  const char* begin = field.key().raw();
  const char* end = begin;
  while (*end != '"') end += *end == '\\' ? 2 : 1;  // the text is validated: the quote comes
  return {begin, static_cast<std::size_t>(end - begin)};
}

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

void validate(od::value& value, const Where& where);

// Reads the members or items to the end, checking that they are well-formed JSON.
void validateMembers(od::object& object, const Where& where) {
  forEachMember(object, where, [&](od::field& field) { validate(field.value(), where); });
}

void validateItems(od::array& array, const Where& where) {
  forEachItem(array, where, [&](od::value& item, std::size_t) { validate(item, where); });
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

od::object expectObject(od::value& value, const Where& where) {
  if (typeOf(value, where) != json_type::object) fail(where, "expected an object");
  return take(value.get_object(), where);
}

od::array expectArray(od::value& value, const Where& where) {
  if (typeOf(value, where) != json_type::array) fail(where, "expected a list");
  return take(value.get_array(), where);
}

std::string expectString(od::value& value, const Where& where) {
  if (typeOf(value, where) != json_type::string) fail(where, "expected a string");
  return std::string(take(value.get_string(), where));
}

bool expectBool(od::value& value, const Where& where) {
  if (typeOf(value, where) != json_type::boolean) fail(where, "expected a boolean");
  return take(value.get_bool(), where);
}

std::int64_t expectInt(od::value& value, const Where& where) {
  if (typeOf(value, where) != json_type::number ||
      take(value.get_number_type(), where) == od::number_type::floating_point_number) {
    fail(where, "expected an integer");
  }
  std::int64_t result = 0;
  if (value.get_int64().get(result)) fail(where, "expected an integer");
  return result;
}

void requireField(bool seen, const char* key, const Where& where) {
  if (!seen) fail(where, std::string("missing field '") + key + "'");
}

// A small value as a Json tree (arguments, specs).
Json toJson(od::value& value, const Where& where);

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

// Argument::validate's message, placed: it reads "<where><.tag>: what".
void validateArgument(const Argument& argument, const Where& where) {
  try {
    argument.validate("");
  } catch (const Error& e) {
    const std::string what = e.what();
    const bool placed = !what.empty() && (what.front() == '.' || what.front() == ':');
    throw Error(where.str() + (placed ? what : ": " + what));
  }
}

Argument readArgument(od::value& value, const Where& where) {
  od::object object = expectObject(value, where);
  std::string_view source = sourceOf(object, where);
  std::string tag;
  Json payload;
  std::size_t members = 0;
  forEachMember(object, where, [&](od::field& field) {
    ++members;
    tag = std::string(take(field.unescaped_key(), where));
    od::value member = field.value();
    payload = toJson(member, where);
  });
  if (members != 1) fail(where, "expected a union with exactly one member");
  Argument argument(std::move(tag), std::move(payload), source);
  validateArgument(argument, where);
  return argument;
}

// A SymInt: a concrete {"as_int": n}, or symbolic ({"as_expr": {"expr_str":
// ...}} and the like), whose symbol this gives as the printer shows it.
struct SymInt {
  std::optional<std::int64_t> value;
  std::string symbol;
};

// "s77" of torch's "Symbol('s77', positive=True, integer=True)"; any other
// expression ("2*s77") as it is written.
std::string symbolOf(std::string_view expression) {
  constexpr std::string_view kSymbol = "Symbol('";
  if (expression.substr(0, kSymbol.size()) == kSymbol) {
    const std::size_t end = expression.find('\'', kSymbol.size());
    if (end != std::string_view::npos) return std::string(expression.substr(kSymbol.size(), end - kSymbol.size()));
  }
  return std::string(expression);
}

SymInt readSymInt(od::value& value, const Where& where) {
  if (typeOf(value, where) != json_type::object) fail(where, "expected a SymInt union");
  od::object object = take(value.get_object(), where);
  std::size_t members = 0;
  SymInt read;
  forEachMember(object, where, [&](od::field& field) {
    ++members;
    const std::string_view key = keyOf(field);
    if (key == "as_int") {
      read.value = expectInt(field.value(), where);
    } else if (key == "as_expr" && typeOf(field.value(), where) == json_type::object) {
      od::object expression = take(field.value().get_object(), where);
      forEachMember(expression, where, [&](od::field& member) {
        if (keyOf(member) == "expr_str" && typeOf(member.value(), where) == json_type::string) {
          read.symbol = symbolOf(expectString(member.value(), where));
        } else {
          validate(member.value(), where);
        }
      });
    } else {
      validate(field.value(), where);
    }
  });
  if (members != 1) fail(where, "expected a SymInt union");
  return read;
}

std::vector<SymInt> readSymInts(od::value& value, const Where& where) {
  std::vector<SymInt> values;
  od::array array = expectArray(value, where);
  forEachItem(array, where, [&](od::value& item, std::size_t) { values.push_back(readSymInt(item, where)); });
  return values;
}

TensorMeta readTensorMeta(od::value& value, const Where& where) {
  od::object object = expectObject(value, where);
  TensorMeta meta;
  meta.source = sourceOf(object, where);
  bool seen_dtype = false, seen_grad = false, seen_sizes = false, seen_strides = false, seen_offset = false;
  std::vector<SymInt> sizes, strides;
  std::optional<std::int64_t> offset;
  forEachMember(object, where, [&](od::field& field) {
    const std::string_view key = keyOf(field);
    if (key == "dtype") {
      meta.dtype = static_cast<ScalarType>(expectInt(field.value(), Where(where, ".dtype")));
      seen_dtype = true;
    } else if (key == "requires_grad") {
      meta.requires_grad = expectBool(field.value(), Where(where, ".requires_grad"));
      seen_grad = true;
    } else if (key == "sizes") {
      sizes = readSymInts(field.value(), Where(where, ".sizes"));
      seen_sizes = true;
    } else if (key == "strides") {
      strides = readSymInts(field.value(), Where(where, ".strides"));
      seen_strides = true;
    } else if (key == "storage_offset") {
      offset = readSymInt(field.value(), Where(where, ".storage_offset")).value;
      seen_offset = true;
    } else {
      validate(field.value(), where);
    }
  });
  requireField(seen_dtype, "dtype", where);
  requireField(seen_grad, "requires_grad", where);
  requireField(seen_sizes, "sizes", where);
  requireField(seen_strides, "strides", where);
  requireField(seen_offset, "storage_offset", where);
  if (sizes.size() != strides.size()) fail(where, "sizes and strides have different lengths");
  meta.symbolic = !offset;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i].value && *sizes[i].value < 0) {
      fail(Where(where, ".sizes"), "negative size " + std::to_string(*sizes[i].value));
    }
    meta.symbolic = meta.symbolic || !sizes[i].value || !strides[i].value;
  }
  if (meta.symbolic) {  // each dimension, and the symbols of the symbolic ones
    for (SymInt& size : sizes) {
      meta.symbolic_sizes.push_back(size.value);
      meta.size_symbols.push_back(size.value ? std::string() : std::move(size.symbol));
    }
  } else {
    meta.sizes.reserve(sizes.size());
    meta.strides.reserve(sizes.size());
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      meta.sizes.push_back(*sizes[i].value);
      meta.strides.push_back(*strides[i].value);
    }
  }
  std::int64_t elements = 1;  // of the static sizes, symbolic meta or not
  for (const SymInt& size : sizes) {
    if (size.value && __builtin_mul_overflow(elements, *size.value, &elements)) {
      fail(Where(where, ".sizes"), "element count overflows");
    }
  }
  if (offset) {
    if (*offset < 0) fail(Where(where, ".storage_offset"), "negative storage offset");
    meta.storage_offset = *offset;
  }
  return meta;
}

Metadata readMetadata(od::value& value, const Where& where) {
  if (typeOf(value, where) != json_type::object) fail(where, "expected an object");
  Metadata metadata;
  metadata.source = rawValue(value, where);
  return metadata;
}

NamedArgument readNamedArgument(od::value& value, const Where& where) {
  od::object object = expectObject(value, where);
  NamedArgument named;
  named.source = sourceOf(object, where);
  bool seen_name = false, seen_arg = false;
  forEachMember(object, where, [&](od::field& field) {
    const std::string_view key = keyOf(field);
    if (key == "name") {
      named.name = expectString(field.value(), Where(where, ".name"));
      seen_name = true;
    } else if (key == "arg") {
      named.arg = readArgument(field.value(), Where(where, ".arg"));
      seen_arg = true;
    } else {
      validate(field.value(), where);
    }
  });
  requireField(seen_name, "name", where);
  requireField(seen_arg, "arg", where);
  return named;
}

Node readNode(od::value& value, const Where& where) {
  od::object object = expectObject(value, where);
  Node node;
  node.source = sourceOf(object, where);
  bool seen_target = false, seen_inputs = false, seen_outputs = false;
  forEachMember(object, where, [&](od::field& field) {
    const std::string_view key = keyOf(field);
    if (key == "target") {
      node.target = expectString(field.value(), Where(where, ".target"));
      seen_target = true;
    } else if (key == "inputs") {
      od::array inputs = expectArray(field.value(), Where(where, ".inputs"));
      forEachItem(inputs, where, [&](od::value& item, std::size_t k) {
        node.inputs.push_back(readNamedArgument(item, Where(where, ".inputs", k)));
      });
      node.inputs.shrink_to_fit();  // thousands of nodes: no room to spare
      seen_inputs = true;
    } else if (key == "outputs") {
      od::array outputs = expectArray(field.value(), Where(where, ".outputs"));
      forEachItem(outputs, where, [&](od::value& item, std::size_t k) {
        node.outputs.push_back(readArgument(item, Where(where, ".outputs", k)));
      });
      node.outputs.shrink_to_fit();
      seen_outputs = true;
    } else if (key == "metadata") {
      node.metadata = readMetadata(field.value(), Where(where, ".metadata"));
    } else {
      od::value member = field.value();
      if (key == "name" && typeOf(member, where) == json_type::string) {
        node.name = std::string(take(member.get_string(), where));
      } else {
        validate(member, where);
      }
    }
  });
  requireField(seen_target, "target", where);
  requireField(seen_inputs, "inputs", where);
  requireField(seen_outputs, "outputs", where);
  return node;
}

// ---- signature ----------------------------------------------------------------

const Json& jsonField(const Json& object, const char* key, const Where& where) {
  if (!object.is_object()) fail(where, "expected an object");
  auto it = object.find(key);
  if (it == object.end()) fail(where, std::string("missing field '") + key + "'");
  return *it;
}

std::string jsonString(const Json& object, const char* key, const Where& where) {
  const Json& value = jsonField(object, key, where);
  if (!value.is_string()) fail(Where(Where(where, "."), key), "expected a string");
  return value.get<std::string>();
}

InputSpec readInputSpec(od::value& value, const Where& where) {
  od::object object = expectObject(value, where);
  InputSpec spec;
  spec.source = sourceOf(object, where);
  const Json json = objectToJson(object, where);
  if (json.size() != 1) fail(where, "expected a union with exactly one member");
  const std::string kind = json.begin().key();
  const Json& body = json.begin().value();
  const Where kind_where(where, ".");
  const Where inner(kind_where, kind);
  auto argument_name = [&](const char* key) {
    const Json& arg = jsonField(body, "arg", inner);
    if (!arg.is_object()) fail(Where(inner, ".arg"), "expected an object");
    return jsonString(arg, key, Where(inner, ".arg"));
  };
  if (kind == "user_input") {
    spec.kind = InputKind::kUserInput;
    const Json& union_json = jsonField(body, "arg", inner);
    if (!union_json.is_object() || union_json.size() != 1)
      fail(Where(inner, ".arg"), "expected a union with exactly one member");
    Argument arg(union_json.begin().key(), union_json.begin().value());
    validateArgument(arg, Where(inner, ".arg"));
    if (arg.is("as_tensor")) spec.name = *arg.tensorReferences()[0];
    else if (arg.payload().is_object() && arg.payload().contains("name") && arg.payload()["name"].is_string())
      spec.name = arg.payload()["name"].get<std::string>();
    else if (arg.payload().is_object() && arg.payload().contains("as_name") && arg.payload()["as_name"].is_string())
      spec.name = arg.payload()["as_name"].get<std::string>();
  } else if (kind == "parameter") {
    spec.kind = InputKind::kParameter;
    spec.name = argument_name("name");
    spec.target = jsonString(body, "parameter_name", inner);
  } else if (kind == "buffer") {
    spec.kind = InputKind::kBuffer;
    spec.name = argument_name("name");
    spec.target = jsonString(body, "buffer_name", inner);
  } else if (kind == "tensor_constant") {
    spec.kind = InputKind::kTensorConstant;
    spec.name = argument_name("name");
    spec.target = jsonString(body, "tensor_constant_name", inner);
  } else if (kind == "custom_obj") {
    spec.kind = InputKind::kCustomObject;
    spec.name = argument_name("name");
    spec.target = jsonString(body, "custom_obj_name", inner);
  } else if (kind == "token") {
    spec.kind = InputKind::kToken;
    spec.name = argument_name("name");
  } else if (kind == "constant_input") {
    spec.kind = InputKind::kConstantInput;
    spec.name = jsonString(body, "name", inner);
  } else {
    fail(where, "unknown input spec kind '" + kind + "'");
  }
  return spec;
}

OutputSpec readOutputSpec(od::value& value, const Where& where) {
  od::object object = expectObject(value, where);
  OutputSpec spec;
  spec.source = sourceOf(object, where);
  std::size_t members = 0;
  bool seen_arg = false;
  forEachMember(object, where, [&](od::field& field) {
    ++members;
    spec.kind = std::string(keyOf(field));
    const Where kind_where(where, ".");
    const Where inner(kind_where, spec.kind);
    od::object body = expectObject(field.value(), inner);
    forEachMember(body, inner, [&](od::field& body_field) {
      const std::string_view key = keyOf(body_field);
      if (key == "arg") {
        spec.arg = readArgument(body_field.value(), Where(inner, ".arg"));
        seen_arg = true;
      } else {
        validate(body_field.value(), inner);
      }
    });
    requireField(seen_arg, "arg", inner);
  });
  if (members != 1) fail(where, "expected a union with exactly one member");
  return spec;
}

// ---- graph and program ----------------------------------------------------------

std::string_view readGraph(od::value& value, Graph& graph, const Where& where) {
  od::object object = expectObject(value, where);
  const std::string_view source = sourceOf(object, where);
  bool seen_inputs = false, seen_outputs = false, seen_nodes = false, seen_values = false;
  forEachMember(object, where, [&](od::field& field) {
    const std::string_view key = keyOf(field);
    auto arguments = [&](std::vector<Argument>& into, const char* name) {
      od::array list = expectArray(field.value(), Where(where, name));
      forEachItem(list, where,
                  [&](od::value& item, std::size_t i) { into.push_back(readArgument(item, Where(where, name, i))); });
    };
    if (key == "inputs") {
      arguments(graph.inputs, ".inputs");
      seen_inputs = true;
    } else if (key == "outputs") {
      arguments(graph.outputs, ".outputs");
      seen_outputs = true;
    } else if (key == "nodes") {
      od::array nodes = expectArray(field.value(), Where(where, ".nodes"));
      // Counted first (a skim of the structure), so the nodes never move.
      graph.nodes.reserve(take(nodes.count_elements(), Where(where, ".nodes")));
      forEachItem(nodes, where, [&](od::value& item, std::size_t i) {
        graph.nodes.push_back(readNode(item, Where(where, ".nodes", i)));
      });
      seen_nodes = true;
    } else if (key == "tensor_values") {
      od::object values = expectObject(field.value(), Where(where, ".tensor_values"));
      graph.tensor_values.reserve(take(values.count_fields(), Where(where, ".tensor_values")));
      forEachMember(values, where, [&](od::field& entry) {
        std::string name(take(entry.unescaped_key(), where));
        const Where values_where(where, ".tensor_values.");
        TensorMeta meta = readTensorMeta(entry.value(), Where(values_where, name));
        graph.tensor_values.emplace_back(std::move(name), std::move(meta));
      });
      seen_values = true;
    } else {
      graph.members.push_back({key, rawValue(field.value(), where)});
      return;
    }
    graph.members.push_back({key, {}});
  });
  requireField(seen_inputs, "inputs", where);
  requireField(seen_outputs, "outputs", where);
  requireField(seen_nodes, "nodes", where);
  requireField(seen_values, "tensor_values", where);
  return source;
}

std::string_view readSignature(od::value& value, GraphSignature& signature, const Where& where) {
  od::object object = expectObject(value, where);
  const std::string_view source = sourceOf(object, where);
  bool seen_inputs = false, seen_outputs = false;
  forEachMember(object, where, [&](od::field& field) {
    const std::string_view key = keyOf(field);
    if (key == "input_specs") {
      od::array specs = expectArray(field.value(), Where(where, ".input_specs"));
      forEachItem(specs, where, [&](od::value& item, std::size_t i) {
        signature.input_specs.push_back(readInputSpec(item, Where(where, ".input_specs", i)));
      });
      seen_inputs = true;
    } else if (key == "output_specs") {
      od::array specs = expectArray(field.value(), Where(where, ".output_specs"));
      forEachItem(specs, where, [&](od::value& item, std::size_t i) {
        signature.output_specs.push_back(readOutputSpec(item, Where(where, ".output_specs", i)));
      });
      seen_outputs = true;
    } else {
      signature.members.push_back({key, rawValue(field.value(), where)});
      return;
    }
    signature.members.push_back({key, {}});
  });
  requireField(seen_inputs, "input_specs", where);
  requireField(seen_outputs, "output_specs", where);
  return source;
}

void readModuleCallGraph(od::value& value, std::vector<ModuleCallEntry>& entries, const Where& where) {
  od::array list = expectArray(value, where);
  forEachItem(list, where, [&](od::value& item, std::size_t) {
    const Where entry_where(where, "[]");
    od::object object = expectObject(item, entry_where);
    ModuleCallEntry entry;
    bool seen_fqn = false;
    forEachMember(object, entry_where, [&](od::field& field) {
      const std::string_view key = keyOf(field);
      if (key == "fqn") {
        entry.fqn = expectString(field.value(), Where(entry_where, ".fqn"));
        seen_fqn = true;
      } else if (key == "signature") {
        entry.signature = rawValue(field.value(), entry_where);
      } else {
        validate(field.value(), entry_where);
      }
    });
    requireField(seen_fqn, "fqn", entry_where);
    entries.push_back(std::move(entry));
  });
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

}  // namespace

RawMembers membersOf(std::string_view object_text) {
  // A padded copy to read; the members returned are slices of the original.
  const simdjson::padded_string padded(object_text);
  const Where where("object");
  auto original = [&](std::string_view slice) {
    return std::string_view(object_text.data() + (slice.data() - padded.data()), slice.size());
  };
  RawMembers members;
  try {
    od::parser parser;
    od::document document = take(parser.iterate(padded), where);
    if (take(document.type(), where) != json_type::object) fail(where, "expected an object");
    od::object object = take(document.get_object(), where);
    forEachMember(object, where, [&](od::field& field) {
      members.push_back({original(keyOf(field)), original(rawValue(field.value(), where))});
    });
  } catch (const MalformedJson& e) {
    throw Error("malformed JSON object: " + e.message);
  }
  return members;
}

ExportedProgram ExportedProgram::parse(std::shared_ptr<const JsonText> text, const std::string& record) {
  return reportingMalformed(record, [&] { return parseChecked(std::move(text), record); });
}

ExportedProgram ExportedProgram::parseChecked(std::shared_ptr<const JsonText> text, const std::string& record) {
  const Where where(record);
  ExportedProgram program;
  program.text = text;
  od::parser parser;
  od::document document;
  od::object top = documentObject(parser, document, *text, where);

  // The version first, wherever it sits: another major version's graph is
  // not ours to read.
  {
    const Where v_where(where, ".schema_version");
    od::value version_value;
    auto error = top.find_field_unordered("schema_version").get(version_value);
    if (error == simdjson::NO_SUCH_FIELD) fail(where, "missing field 'schema_version'");
    if (error) fail(where, simdjson::error_message(error));
    od::object version = expectObject(version_value, Where(where, ": schema_version"));
    std::optional<std::int64_t> major, minor;
    forEachMember(version, v_where, [&](od::field& field) {
      const std::string_view key = keyOf(field);
      if (key == "major") major = expectInt(field.value(), Where(v_where, ".major"));
      if (key == "minor") minor = expectInt(field.value(), Where(v_where, ".minor"));
    });
    requireField(major.has_value(), "major", v_where);
    requireField(minor.has_value(), "minor", v_where);
    program.schema_major = static_cast<int>(*major);
    program.schema_minor = static_cast<int>(*minor);
    if (program.schema_major != kSchemaMajorVersion) {
      fail(where, "unsupported schema major version " + std::to_string(program.schema_major) + " (this qatfold reads " +
                      std::to_string(kSchemaMajorVersion) + ")");
    }
    take(top.reset(), where);
  }

  const Where gm_where(where, ": graph_module");
  bool seen_graph_module = false, seen_graph = false, seen_signature = false;
  forEachMember(top, where, [&](od::field& field) {
    const std::string_view key = keyOf(field);
    if (key == "torch_version") {
      od::value value = field.value();
      if (typeOf(value, where) == json_type::string)
        program.torch_version = std::string(take(value.get_string(), where));
      else validate(value, where);
    } else if (key == "opset_version") {
      od::object opsets = expectObject(field.value(), Where(where, ": opset_version"));
      forEachMember(opsets, where, [&](od::field& opset) {
        std::string name(take(opset.unescaped_key(), where));
        const Where opsets_where(where, ": opset_version.");
        const std::int64_t version = expectInt(opset.value(), Where(opsets_where, name));
        program.opset_version.emplace_back(std::move(name), version);
      });
    } else if (key == "graph_module") {
      seen_graph_module = true;
      od::object graph_module = expectObject(field.value(), Where(where, ": graph_module"));
      forEachMember(graph_module, gm_where, [&](od::field& member) {
        const std::string_view member_key = keyOf(member);
        if (member_key == "graph") {
          const std::string_view span = readGraph(member.value(), program.graph, Where(gm_where, ".graph"));
          program.graph_begin = text->offsetOf(span);
          program.graph_end = program.graph_begin + span.size();
          seen_graph = true;
        } else if (member_key == "signature") {
          const std::string_view span = readSignature(member.value(), program.signature, Where(gm_where, ".signature"));
          program.signature_begin = text->offsetOf(span);
          program.signature_end = program.signature_begin + span.size();
          seen_signature = true;
        } else if (member_key == "module_call_graph") {
          readModuleCallGraph(member.value(), program.module_call_graph, Where(gm_where, ".module_call_graph"));
        } else {
          validate(member.value(), gm_where);
        }
      });
    } else {
      validate(field.value(), where);
    }
  });
  expectEnd(document, where);
  requireField(seen_graph_module, "graph_module", where);
  requireField(seen_graph, "graph", gm_where);
  requireField(seen_signature, "signature", gm_where);
  const Where s_where(gm_where, ".signature");
  if (program.signature.input_specs.size() != program.graph.inputs.size()) {
    fail(s_where, "has " + std::to_string(program.signature.input_specs.size()) + " input specs for " +
                      std::to_string(program.graph.inputs.size()) + " graph inputs");
  }
  if (program.signature.output_specs.size() != program.graph.outputs.size()) {
    fail(s_where, "has " + std::to_string(program.signature.output_specs.size()) + " output specs for " +
                      std::to_string(program.graph.outputs.size()) + " graph outputs");
  }
  return program;
}

PayloadConfig PayloadConfig::parse(std::shared_ptr<const JsonText> text, const std::string& record) {
  return reportingMalformed(record, [&] { return parseChecked(std::move(text), record); });
}

PayloadConfig PayloadConfig::parseChecked(std::shared_ptr<const JsonText> text, const std::string& record) {
  const Where where(record);
  PayloadConfig config;
  config.text = text;
  od::parser parser;
  od::document document;
  od::object top = documentObject(parser, document, *text, where);
  bool seen_config = false;
  forEachMember(top, where, [&](od::field& field) {
    const std::string_view key = keyOf(field);
    if (key != "config") {
      config.members.push_back({key, rawValue(field.value(), where)});
      return;
    }
    seen_config = true;
    config.members.push_back({key, {}});
    od::object entries = expectObject(field.value(), Where(where, ": config"));
    forEachMember(entries, where, [&](od::field& entry) {
      std::string fqn(take(entry.unescaped_key(), where));
      const Where entries_where(where, ": config.");
      const Where e_where(entries_where, fqn);
      od::object object = expectObject(entry.value(), e_where);
      PayloadMeta meta;
      meta.source = sourceOf(object, e_where);
      bool seen_path = false, seen_param = false, seen_pickle = false, seen_tensor = false;
      forEachMember(object, e_where, [&](od::field& member) {
        const std::string_view member_key = keyOf(member);
        od::value value = member.value();
        if (member_key == "path_name") {
          meta.path_name = expectString(value, Where(e_where, ".path_name"));
          seen_path = true;
        } else if (member_key == "is_param") {
          meta.is_param = expectBool(value, Where(e_where, ".is_param"));
          seen_param = true;
        } else if (member_key == "use_pickle") {
          meta.use_pickle = expectBool(value, Where(e_where, ".use_pickle"));
          seen_pickle = true;
        } else if (member_key == "tensor_meta") {
          if (typeOf(value, e_where) == json_type::null) {
            validate(value, e_where);  // checks the literal
          } else {
            meta.tensor_meta = readTensorMeta(value, Where(e_where, ".tensor_meta"));
          }
          seen_tensor = true;
        } else {
          validate(value, e_where);
        }
      });
      requireField(seen_path, "path_name", e_where);
      requireField(seen_param, "is_param", e_where);
      requireField(seen_pickle, "use_pickle", e_where);
      requireField(seen_tensor, "tensor_meta", e_where);
      if (!meta.use_pickle && !meta.tensor_meta) fail(e_where, "raw payload without tensor_meta");
      if (meta.path_name.empty() || meta.path_name.find('/') != std::string::npos ||
          meta.path_name.find("..") != std::string::npos) {
        fail(Where(e_where, ".path_name"), "'" + meta.path_name + "' is not a plain record name");
      }
      meta.source_path_name = meta.path_name;
      config.entries.emplace_back(std::move(fqn), std::move(meta));
    });
  });
  expectEnd(document, where);
  requireField(seen_config, "config", where);
  return config;
}

}  // namespace qatfold::program
