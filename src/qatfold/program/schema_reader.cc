// Reads the schema's records from a JsonText with simdjson's On-Demand API:
// the fields the passes interpret become typed values, the rest stays as
// slices of the text (see schema.h).
//
// On-Demand checks only what it is asked to read, so the reader walks every
// value it keeps as a slice too (validate()): each record is fully checked
// in the one pass that reads it, with no document tree in memory.
#include <simdjson.h>

#include "qatfold/error.h"
#include "qatfold/program/checked_json.h"
#include "qatfold/program/schema.h"

namespace qatfold::program {
namespace {

using namespace checked;  // the checked On-Demand toolkit (checked_json.h)

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
    } else if (key == "kind") {
      named.keyword_only = expectInt(field.value(), Where(where, ".kind")) == 2;
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
