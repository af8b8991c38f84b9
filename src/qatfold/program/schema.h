// Typed view of the serialized ExportedProgram (torch/_export/serde/schema.py,
// major version 8).
//
// The reader (schema_reader.cc) walks a record once with simdjson, checking
// all of it and parsing only the fields the passes interpret. Everything
// else stays as a slice of the record's text: each struct keeps the exact
// text it was read from (`source`). The writer (schema_writer.cc) re-emits
// every unchanged part from its source and builds the rest in the exact
// format of Python's json.dumps; a changed part's members it does not own
// (a node's name, an input's kind) it reads back from the source then. So
// an untouched node, tensor meta or spec comes out byte for byte as it came
// in, without being re-serialized, and nothing is held twice.
//
// Slices point into a JsonText that the owning ExportedProgram or
// PayloadConfig keeps alive (`text`). Parsed structs are never edited in
// place: a changed part is a new value without a source.
#pragma once

#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qatfold/error.h"
#include "qatfold/program/json.h"
#include "qatfold/program/json_text.h"

namespace qatfold::program {

// The schema major version this build reads and writes.
inline constexpr int kSchemaMajorVersion = 8;
// What a program made here (not read from an archive: a text graph) says of
// itself: the schema minor version and the torch release it matches.
inline constexpr int kSchemaMinorVersion = 20;
inline constexpr const char* kTorchVersion = "2.13.0+cpu";

// torch.ScalarType as the schema numbers it.
enum class ScalarType : int {
  kUnknown = 0,
  kUInt8 = 1,
  kInt8 = 2,
  kInt16 = 3,
  kInt32 = 4,
  kInt64 = 5,
  kFloat16 = 6,
  kFloat32 = 7,
  kFloat64 = 8,
  kBool = 12,
  kBFloat16 = 13,
  kUInt16 = 28,
  kUInt32 = 34,
  kUInt64 = 35,
};

// Bytes per element, or 0 for types we do not know.
std::size_t elementSize(ScalarType type);
// "float32", "int8", ... ("dtype<N>" for others).
std::string scalarTypeName(ScalarType type);

// One member of a JSON object as the record spells it: the key between its
// quotes (escapes kept) and the value's exact text. A member the owning
// struct writes from its fields has an empty `value`: it only holds its place.
struct RawMember {
  std::string_view key;
  std::string_view value;
};
using RawMembers = std::vector<RawMember>;

// The members of the JSON object `object_text` (a slice of a JsonText, or
// text the writer made), in order. Throws Error if it is not an object.
RawMembers membersOf(std::string_view object_text);

// A node's metadata (stack_trace, nn_module_stack, ...): opaque to every
// pass, kept as text and copied between nodes as it is.
struct Metadata {
  std::string_view source;  // the whole object as read
  RawMembers members;       // set instead of `source` for metadata built in memory

  // The decoded value of string member `key`, or nullopt.
  std::optional<std::string> stringValue(std::string_view key) const;
  // A copy holding only the members named in `keys`, in that order.
  Metadata subset(std::initializer_list<std::string_view> keys) const;
  void write(std::string& out) const;
};

// The schema's Argument union: {"as_<kind>": payload}.
//
// The commonest kind, a reference to one tensor ({"as_tensor": {"name":
// n}}), holds just its name: no JSON tree, one string. Every other kind
// holds its payload as JSON.
class Argument {
 public:
  Argument() = default;
  // `source` is the union's exact text when the argument was read.
  Argument(std::string tag, Json payload, std::string_view source = {});
  // Checks the payload's shape against the kind; throws Error naming `where`.
  void validate(const std::string& where) const;
  void write(std::string& out) const;
  Json toJson() const;

  static Argument none() { return {"as_none", true}; }
  static Argument tensor(std::string name) {
    Argument argument;
    argument.tag_ = "as_tensor";
    argument.tensor_name_ = std::move(name);
    argument.compact_ = true;
    return argument;
  }
  static Argument integer(std::int64_t value) { return {"as_int", value}; }
  static Argument real(double value) { return {"as_float", floatToJson(value)}; }
  static Argument integers(const std::vector<std::int64_t>& values) { return {"as_ints", values}; }
  static Argument scalarType(ScalarType type) { return {"as_scalar_type", static_cast<int>(type)}; }

  const std::string& tag() const { return tag_; }
  // The payload as JSON (built for a compact tensor reference).
  Json payload() const { return compact_ ? Json{{"name", tensor_name_}} : payload_; }
  std::string_view source() const { return source_; }
  bool is(const char* tag) const { return tag_ == tag; }
  bool isNone() const { return tag_ == "as_none"; }

  // Typed reads; each returns nullopt when the argument has another kind.
  std::optional<std::int64_t> asInt() const;
  std::optional<double> asFloat() const;  // as_float, or as_int widened
  std::optional<bool> asBool() const;
  std::optional<std::vector<std::int64_t>> asInts() const;
  std::optional<ScalarType> asScalarType() const;

  // Names of the tensors this argument refers to, in order: one for
  // as_tensor, several for as_tensors, and for optional tensor lists one per
  // entry (nullopt for None entries).
  std::vector<std::optional<std::string>> tensorReferences() const;
  // The same walk without copies: calls visit(const std::string* name) per
  // reference, in order (null for None entries); throws Error when malformed.
  template <class Visit>
  void forEachTensorReference(Visit&& visit) const;
  // tensorReferences().size(), without building the names.
  std::size_t tensorReferenceCount() const;
  // Whether this kind of argument may name tensors (so tensorReferences
  // describes its structure).
  bool refersToTensors() const;
  // A copy with the tensor references replaced, entry for entry.
  Argument withTensorReferences(const std::vector<std::optional<std::string>>& names) const;

 private:
  std::string tag_;
  Json payload_;  // null when compact_
  std::string_view source_;
  std::string tensor_name_;  // as_tensor's name when compact_
  bool compact_ = false;
};

template <class Visit>
void Argument::forEachTensorReference(Visit&& visit) const {
  auto name_of = [](const Json& item) -> const std::string* {
    if (!item.is_object()) return nullptr;
    const auto it = item.find("name");
    return it != item.end() && it->is_string() ? &it->template get_ref<const std::string&>() : nullptr;
  };
  auto tensor = [&](const Json& item) {
    const std::string* name = name_of(item);
    if (name == nullptr) throw Error("malformed tensor argument");
    visit(name);
  };
  auto optional = [&](const Json& item) {
    if (!item.is_object() || item.size() != 1) throw Error("malformed optional tensor argument");
    visit(item.begin().key() == "as_tensor" ? name_of(item.begin().value()) : nullptr);
  };
  if (compact_) {
    visit(&tensor_name_);
  } else if (tag_ == "as_tensor") {
    tensor(payload_);
  } else if (tag_ == "as_tensors") {
    if (!payload_.is_array()) throw Error("malformed tensor list argument");
    for (const Json& item : payload_) tensor(item);
  } else if (tag_ == "as_optional_tensor") {
    optional(payload_);
  } else if (tag_ == "as_optional_tensors") {
    if (!payload_.is_array()) throw Error("malformed optional tensor list argument");
    for (const Json& item : payload_) optional(item);
  }
}

// TensorMeta: dtype, shape, strides, device.
struct TensorMeta {
  ScalarType dtype = ScalarType::kUnknown;
  std::vector<std::int64_t> sizes;
  std::vector<std::int64_t> strides;
  std::int64_t storage_offset = 0;
  bool requires_grad = false;
  // True when a size, stride or offset is symbolic; `sizes` and `strides`
  // are then empty and `source` describes the tensor, while
  // `symbolic_sizes` still gives every dimension whose size is a number.
  bool symbolic = false;
  // Only when `symbolic`: per dimension, the size where it is a number and
  // nullopt where it is symbolic, and the symbol of each symbolic one as the
  // archive spells it ("s77", or an expression such as "2*s77"; "" where
  // static). A pass asks rank() and size(d) and gets what it needs whenever
  // that dimension is static.
  std::vector<std::optional<std::int64_t>> symbolic_sizes;
  std::vector<std::string> size_symbols;
  // The record's text of this meta; empty for metas built in memory, which
  // are written as contiguous CPU tensors.
  std::string_view source;

  // A contiguous CPU tensor of `dtype` and `sizes`.
  static TensorMeta contiguous(ScalarType dtype, const std::vector<std::int64_t>& sizes);
  void write(std::string& out) const;
  std::int64_t numel() const;
  // Bytes the storage must hold for this view (0 for empty tensors);
  // throws Error on overflow or negative strides.
  std::uint64_t requiredStorageBytes() const;
  std::string shapeString() const;  // "[1, 3, 16, 16]", "[s77, 8, 64]"
  // Number of dimensions, symbolic or not.
  std::size_t rank() const { return symbolic ? symbolic_sizes.size() : sizes.size(); }
  // Size of dimension `dim`; nullopt where it is symbolic or past the rank.
  std::optional<std::int64_t> size(std::size_t dim) const;
  // Dimension `dim` as text: its size, or its symbol ("s77"; "?" unnamed).
  std::string sizeText(std::size_t dim) const;
};

// A node input: schema name, argument, and its other members (kind).
struct NamedArgument {
  std::string name;
  Argument arg;
  std::string_view source;    // as read; empty for inputs built in memory
  bool changed = false;       // `arg` no longer matches `source`
  bool keyword_only = false;  // ArgumentKind KEYWORD (2): the op takes it by name only
  void write(std::string& out) const;
};

struct Node {
  std::string target;  // "torch.ops.aten.conv2d.default"
  std::string name;    // torch's fx node name, when the record has one
  std::vector<NamedArgument> inputs;
  std::vector<Argument> outputs;
  Metadata metadata;
  std::string_view source;  // as read; empty for nodes built in memory
  bool changed = false;     // an input changed since it was read
  void write(std::string& out) const;
};

// What a graph input is bound to.
enum class InputKind { kUserInput, kParameter, kBuffer, kTensorConstant, kCustomObject, kToken, kConstantInput };
// The schema's names of the kinds ("user_input", "tensor_constant", ...), in enum order.
inline constexpr std::string_view kInputKindNames[] = {"user_input", "parameter", "buffer",        "tensor_constant",
                                                       "custom_obj", "token",     "constant_input"};
inline std::string_view inputKindName(InputKind kind) { return kInputKindNames[static_cast<std::size_t>(kind)]; }
// The kind of that name, or nullopt.
inline std::optional<InputKind> parseInputKind(std::string_view name) {
  for (std::size_t i = 0; i < std::size(kInputKindNames); ++i) {
    if (kInputKindNames[i] == name) return static_cast<InputKind>(i);
  }
  return std::nullopt;
}

// Parameters, buffers and lifted tensor constants: inputs with a payload.
inline bool isConstantKind(InputKind kind) {
  return kind == InputKind::kParameter || kind == InputKind::kBuffer || kind == InputKind::kTensorConstant;
}

struct InputSpec {
  InputKind kind = InputKind::kUserInput;
  std::string name;    // the graph value (placeholder) it binds
  std::string target;  // parameter/buffer/constant FQN, empty for user inputs
  std::string_view source;
  // A new parameter, buffer or tensor constant input (throws for other kinds).
  static InputSpec constant(InputKind kind, const std::string& name, const std::string& target);
  void write(std::string& out) const;
};

struct OutputSpec {
  std::string kind;  // "user_output", "buffer_mutation", ...
  Argument arg;
  std::string_view source;  // as read; empty for specs built in memory
  bool changed = false;     // `arg` no longer matches `source`
  void write(std::string& out) const;
};

struct Graph {
  std::vector<Argument> inputs;
  std::vector<Argument> outputs;
  std::vector<Node> nodes;
  std::vector<std::pair<std::string, TensorMeta>> tensor_values;  // file order
  RawMembers members;
  // `flush(out)` runs after each node and tensor value: it may hand `out`
  // on and clear it, so a large graph is written in pieces.
  void write(std::string& out, const std::function<void(std::string&)>& flush = nullptr) const;
};

struct GraphSignature {
  std::vector<InputSpec> input_specs;
  std::vector<OutputSpec> output_specs;
  RawMembers members;
  void write(std::string& out) const;
};

// One entry of the module call graph: a submodule's FQN and, for the root
// and preserved modules, its call signature (the record's text).
struct ModuleCallEntry {
  std::string fqn;
  std::string_view signature;
};

struct ExportedProgram {
  Graph graph;
  GraphSignature signature;
  std::vector<ModuleCallEntry> module_call_graph;
  std::vector<std::pair<std::string, std::int64_t>> opset_version;  // {"aten": 10}
  int schema_major = 0;
  int schema_minor = 0;
  std::string torch_version;
  // The record. Everything outside graph_module.graph and
  // graph_module.signature (range constraints, verifiers, the module call
  // graph, ...) is written back from it unchanged.
  std::shared_ptr<const JsonText> text;
  std::size_t graph_begin = 0, graph_end = 0;          // span of graph_module.graph
  std::size_t signature_begin = 0, signature_end = 0;  // span of graph_module.signature

  // Parses models/<name>.json; `where` names it in messages. Refuses other
  // schema major versions.
  static ExportedProgram parse(std::shared_ptr<const JsonText> text, const std::string& where);
  // A copy without the graph's inputs, outputs, nodes and tensor values and
  // the signature's specs: what an emitter fills in again.
  ExportedProgram shell() const;
  // The record as it now stands, handed to `emit` in pieces of about 64 KiB.
  void write(const std::function<void(std::string_view)>& emit) const;
  // The same, as one string.
  std::string dump() const;
  // dump(), parsed (for tests and tools that inspect the result).
  Json toJson() const;

 private:
  static ExportedProgram parseChecked(std::shared_ptr<const JsonText> text, const std::string& record);
};

// One entry of a payload config (data/weights/*_weights_config.json).
struct PayloadMeta {
  std::string path_name;  // "weight_0", record under data/weights/
  bool is_param = false;
  bool use_pickle = false;
  std::optional<TensorMeta> tensor_meta;  // absent for custom objects
  std::string_view source;                // the entry as read
  std::string source_path_name;           // path_name as read: a renamed entry is rebuilt
  bool changed = false;                   // tensor_meta or flags changed since it was read
  void write(std::string& out) const;
};

struct PayloadConfig {
  std::vector<std::pair<std::string, PayloadMeta>> entries;  // FQN -> meta, file order
  RawMembers members;
  std::shared_ptr<const JsonText> text;  // keeps the slices alive
  static PayloadConfig parse(std::shared_ptr<const JsonText> text, const std::string& where);
  std::string dump() const;
  const PayloadMeta* tryFind(const std::string& fqn) const;

 private:
  static PayloadConfig parseChecked(std::shared_ptr<const JsonText> text, const std::string& record);
};

}  // namespace qatfold::program
