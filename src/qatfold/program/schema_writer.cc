// Writes the schema's records back as text. A part that still has its
// source is copied verbatim; the rest is built in the format of Python's
// json.dumps (", " and ": " separators, ASCII escapes, repr() floats), so
// the output of an unchanged program equals its input byte for byte.
#include "qatfold/error.h"
#include "qatfold/program/schema.h"

namespace qatfold::program {
namespace {

void writeKey(std::string& out, std::string_view raw_key) {
  out.push_back('"');
  out.append(raw_key);
  out.append("\": ");
}

// {members}: `owned(key, out)` writes the value of a member the struct
// owns and returns true; the other members are copied as they were.
template <class Owned>
void writeMembers(std::string& out, const RawMembers& members, Owned&& owned) {
  out.push_back('{');
  bool first = true;
  for (const RawMember& member : members) {
    if (!first) out.append(", ");
    first = false;
    writeKey(out, member.key);
    if (!owned(member.key, out)) out.append(member.value);
  }
  out.push_back('}');
}

// Hands `out` on between the items of a long list (see Graph::write).
using Flush = std::function<void(std::string&)>;

template <class T>
void writeList(std::string& out, const std::vector<T>& items, const Flush& flush = nullptr) {
  out.push_back('[');
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out.append(", ");
    items[i].write(out);
    if (flush) flush(out);
  }
  out.push_back(']');
}

// {"name": value, ...} of (name, value) pairs, in order.
template <class T>
void writeEntries(std::string& out, const std::vector<std::pair<std::string, T>>& entries,
                  const Flush& flush = nullptr) {
  out.push_back('{');
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (i) out.append(", ");
    appendJsonString(out, entries[i].first);
    out.append(": ");
    entries[i].second.write(out);
    if (flush) flush(out);
  }
  out.push_back('}');
}

void writeSymInts(std::string& out, const std::vector<std::int64_t>& values) {
  out.push_back('[');
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) out.append(", ");
    out.append("{\"as_int\": ").append(std::to_string(values[i])).push_back('}');
  }
  out.push_back(']');
}

}  // namespace

void Argument::write(std::string& out) const {
  if (!source_.empty()) {
    out.append(source_);
    return;
  }
  if (compact_) {
    out.append("{\"as_tensor\": {\"name\": ");
    appendJsonString(out, tensor_name_);
    out.append("}}");
    return;
  }
  out.push_back('{');
  appendJsonString(out, tag_);
  out.append(": ");
  appendJson(out, payload_);
  out.push_back('}');
}

Json Argument::toJson() const { return Json{{tag_, payload()}}; }

void TensorMeta::write(std::string& out) const {
  if (!source.empty()) {
    out.append(source);
    return;
  }
  if (symbolic) throw Error("cannot write a symbolic tensor meta built in memory");
  out.append("{\"dtype\": ").append(std::to_string(static_cast<int>(dtype)));
  out.append(", \"sizes\": ");
  writeSymInts(out, sizes);
  out.append(", \"requires_grad\": ").append(requires_grad ? "true" : "false");
  out.append(", \"device\": {\"type\": \"cpu\", \"index\": null}, \"strides\": ");
  writeSymInts(out, strides);
  out.append(", \"storage_offset\": {\"as_int\": ").append(std::to_string(storage_offset));
  out.append("}, \"layout\": 7}");
}

void Metadata::write(std::string& out) const {
  if (!source.empty()) {
    out.append(source);
    return;
  }
  writeMembers(out, members, [](std::string_view, std::string&) { return false; });
}

void NamedArgument::write(std::string& out) const {
  if (!source.empty() && !changed) {
    out.append(source);
    return;
  }
  if (source.empty()) {
    out.append("{\"name\": ");
    appendJsonString(out, name);
    out.append(", \"arg\": ");
    arg.write(out);
    out.append(keyword_only ? ", \"kind\": 2}" : ", \"kind\": 1}");
    return;
  }
  writeMembers(out, membersOf(source), [this](std::string_view key, std::string& into) {
    if (key == "name") appendJsonString(into, name);
    else if (key == "arg") arg.write(into);
    else return false;
    return true;
  });
}

void Node::write(std::string& out) const {
  if (!source.empty() && !changed) {
    out.append(source);
    return;
  }
  auto owned = [this](std::string_view key, std::string& into) {
    if (key == "target") appendJsonString(into, target);
    else if (key == "inputs") writeList(into, inputs);
    else if (key == "outputs") writeList(into, outputs);
    else if (key == "metadata") metadata.write(into);
    else return false;
    return true;
  };
  if (!source.empty()) {
    writeMembers(out, membersOf(source), owned);
    return;
  }
  out.append("{\"target\": ");
  appendJsonString(out, target);
  out.append(", \"inputs\": ");
  writeList(out, inputs);
  out.append(", \"outputs\": ");
  writeList(out, outputs);
  out.append(", \"metadata\": ");
  metadata.write(out);
  out.append(", \"is_hop_single_tensor_return\": null, \"name\": ");
  appendJsonString(out, name);
  out.push_back('}');
}

InputSpec InputSpec::constant(InputKind kind, const std::string& name, const std::string& target) {
  if (!isConstantKind(kind)) throw Error("only parameters, buffers and tensor constants can be added");
  InputSpec spec;
  spec.kind = kind;
  spec.name = name;
  spec.target = target;
  return spec;
}

void InputSpec::write(std::string& out) const {
  if (!source.empty()) {
    out.append(source);
    return;
  }
  if (!isConstantKind(kind)) throw Error("cannot write an input spec of this kind built in memory");
  const std::string_view kind_key = inputKindName(kind);
  out.append("{\"").append(kind_key).append("\": {\"arg\": {\"name\": ");
  appendJsonString(out, name);
  out.append("}, \"").append(kind_key).append("_name\": ");
  appendJsonString(out, target);
  if (kind == InputKind::kBuffer) out.append(", \"persistent\": true");
  out.append("}}");
}

void OutputSpec::write(std::string& out) const {
  if (!source.empty() && !changed) {
    out.append(source);
    return;
  }
  out.push_back('{');
  appendJsonString(out, kind);
  out.append(": ");
  const RawMembers outer = source.empty() ? RawMembers{} : membersOf(source);
  if (outer.size() != 1) {
    out.append("{\"arg\": ");
    arg.write(out);
    out.push_back('}');
  } else {
    writeMembers(out, membersOf(outer.front().value), [this](std::string_view key, std::string& into) {
      if (key != "arg") return false;
      arg.write(into);
      return true;
    });
  }
  out.push_back('}');
}

void Graph::write(std::string& out, const std::function<void(std::string&)>& flush) const {
  writeMembers(out, members, [&](std::string_view key, std::string& into) {
    if (key == "inputs") {
      writeList(into, inputs);
    } else if (key == "outputs") {
      writeList(into, outputs);
    } else if (key == "nodes") {
      writeList(into, nodes, flush);
    } else if (key == "tensor_values") {
      writeEntries(into, tensor_values, flush);
    } else {
      return false;
    }
    return true;
  });
}

void GraphSignature::write(std::string& out) const {
  writeMembers(out, members, [this](std::string_view key, std::string& into) {
    if (key == "input_specs") writeList(into, input_specs);
    else if (key == "output_specs") writeList(into, output_specs);
    else return false;
    return true;
  });
}

void ExportedProgram::write(const std::function<void(std::string_view)>& emit) const {
  if (!text) throw Error("exported program has no record to write into");
  constexpr std::size_t kPiece = 64 * 1024;
  const std::string_view record = text->view();
  std::string piece;
  piece.reserve(2 * kPiece);
  auto flush = [&](std::string& out) {
    if (out.size() < kPiece) return;
    emit(out);
    out.clear();
  };
  // The graph and the signature replace their spans; the rest is the record's.
  const bool graph_first = graph_begin < signature_begin;
  std::size_t at = 0;
  for (int part = 0; part < 2; ++part) {
    const bool is_graph = (part == 0) == graph_first;
    const std::size_t begin = is_graph ? graph_begin : signature_begin;
    const std::size_t end = is_graph ? graph_end : signature_end;
    if (!piece.empty()) emit(piece);
    piece.clear();
    emit(record.substr(at, begin - at));
    if (is_graph) graph.write(piece, flush);
    else signature.write(piece);
    at = end;
  }
  if (!piece.empty()) emit(piece);
  emit(record.substr(at));
}

std::string ExportedProgram::dump() const {
  std::string out;
  if (text) out.reserve(text->size() + text->size() / 8);
  write([&out](std::string_view piece) { out.append(piece); });
  return out;
}

void PayloadMeta::write(std::string& out) const {
  if (!source.empty() && !changed && path_name == source_path_name) {
    out.append(source);
    return;
  }
  auto owned = [this](std::string_view key, std::string& into) {
    if (key == "path_name") {
      appendJsonString(into, path_name);
    } else if (key == "is_param") {
      into.append(is_param ? "true" : "false");
    } else if (key == "use_pickle") {
      into.append(use_pickle ? "true" : "false");
    } else if (key == "tensor_meta") {
      if (tensor_meta) tensor_meta->write(into);
      else into.append("null");
    } else {
      return false;
    }
    return true;
  };
  if (!source.empty()) {
    writeMembers(out, membersOf(source), owned);
    return;
  }
  const RawMembers canonical = {{"path_name", {}}, {"is_param", {}}, {"use_pickle", {}}, {"tensor_meta", {}}};
  writeMembers(out, canonical, owned);
}

std::string PayloadConfig::dump() const {
  std::string out;
  auto entries_json = [this](std::string_view key, std::string& into) {
    if (key != "config") return false;
    writeEntries(into, entries);
    return true;
  };
  const RawMembers canonical = {{"config", {}}};
  writeMembers(out, members.empty() ? canonical : members, entries_json);
  return out;
}

}  // namespace qatfold::program
