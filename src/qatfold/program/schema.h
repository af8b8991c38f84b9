// Typed view of the serialized ExportedProgram (torch/_export/serde/schema.py,
// major version 8).
//
// Every struct keeps the JSON object it was parsed from in `raw`; toJson()
// starts from it and overwrites only the fields the struct interprets, so
// fields we do not know survive in place and in order.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "qatfold/program/json.h"

namespace qatfold::program {

// The schema major version this build reads and writes.
inline constexpr int kSchemaMajorVersion = 8;

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

// The schema's Argument union: {"as_<kind>": payload}.
class Argument {
 public:
  Argument() = default;
  Argument(std::string tag, Json payload) : tag_(std::move(tag)), payload_(std::move(payload)) {}
  // Throws Error naming `where` if `json` is not a one-key object.
  static Argument parse(const Json& json, const std::string& where);
  Json toJson() const;

  static Argument none() { return {"as_none", true}; }
  static Argument tensor(const std::string& name) { return {"as_tensor", Json{{"name", name}}}; }
  static Argument integer(std::int64_t value) { return {"as_int", value}; }
  static Argument real(double value) { return {"as_float", floatToJson(value)}; }
  static Argument integers(const std::vector<std::int64_t>& values) { return {"as_ints", values}; }
  static Argument scalarType(ScalarType type) { return {"as_scalar_type", static_cast<int>(type)}; }

  const std::string& tag() const { return tag_; }
  const Json& payload() const { return payload_; }
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
  // Whether this kind of argument may name tensors (so tensorReferences
  // describes its structure).
  bool refersToTensors() const;
  // A copy with the tensor references replaced, entry for entry.
  Argument withTensorReferences(const std::vector<std::optional<std::string>>& names) const;

 private:
  std::string tag_;
  Json payload_;
};

// TensorMeta: dtype, shape, strides, device.
struct TensorMeta {
  ScalarType dtype = ScalarType::kUnknown;
  std::vector<std::int64_t> sizes;
  std::vector<std::int64_t> strides;
  std::int64_t storage_offset = 0;
  bool requires_grad = false;
  // True when a size, stride or offset is symbolic; the numbers are then not
  // meaningful and toJson() returns `raw` unchanged.
  bool symbolic = false;
  Json raw;

  static TensorMeta parse(const Json& json, const std::string& where);
  // A contiguous CPU tensor of `dtype` and `sizes`.
  static TensorMeta contiguous(ScalarType dtype, const std::vector<std::int64_t>& sizes);
  Json toJson() const;
  std::int64_t numel() const;
  // Bytes the storage must hold for this view (0 for empty tensors);
  // throws Error on overflow or negative strides.
  std::uint64_t requiredStorageBytes() const;
  std::string shapeString() const;  // "[1, 3, 16, 16]"
};

// A node input: schema name, argument, and ArgumentKind (positional/keyword).
struct NamedArgument {
  std::string name;
  Argument arg;
  Json raw;
  Json toJson() const;
};

struct Node {
  std::string target;  // "torch.ops.aten.conv2d.default"
  std::vector<NamedArgument> inputs;
  std::vector<Argument> outputs;
  Json metadata;  // object of strings: stack_trace, nn_module_stack, ...
  Json raw;
  Json toJson() const;
};

// What a graph input is bound to.
enum class InputKind { kUserInput, kParameter, kBuffer, kTensorConstant, kCustomObject, kToken, kConstantInput };

struct InputSpec {
  InputKind kind = InputKind::kUserInput;
  std::string name;    // the graph value (placeholder) it binds
  std::string target;  // parameter/buffer/constant FQN, empty for user inputs
  Json raw;            // {"parameter": {...}} etc.
  static InputSpec parse(const Json& json, const std::string& where);
  Json toJson() const;
};

struct OutputSpec {
  std::string kind;  // "user_output", "buffer_mutation", ...
  Argument arg;
  Json raw;
  static OutputSpec parse(const Json& json, const std::string& where);
  Json toJson() const;
};

struct Graph {
  std::vector<Argument> inputs;
  std::vector<Argument> outputs;
  std::vector<Node> nodes;
  std::vector<std::pair<std::string, TensorMeta>> tensor_values;  // file order
  Json raw;
  Json toJson() const;
};

struct GraphSignature {
  std::vector<InputSpec> input_specs;
  std::vector<OutputSpec> output_specs;
  Json raw;
  Json toJson() const;
};

// One entry of the module call graph: a submodule's FQN and, for the root
// and preserved modules, its call signature (kept as JSON).
struct ModuleCallEntry {
  std::string fqn;
  Json signature;
};

struct ExportedProgram {
  Graph graph;
  GraphSignature signature;
  std::vector<ModuleCallEntry> module_call_graph;
  std::vector<std::pair<std::string, std::int64_t>> opset_version;  // {"aten": 10}
  int schema_major = 0;
  int schema_minor = 0;
  std::string torch_version;
  // The whole document; range_constraints, verifiers, guards_code and every
  // field not listed above stay here untouched. The passes never change the
  // module call graph or the opsets, so toJson() writes them from here.
  Json raw;

  // Parses models/<name>.json; `where` names it in messages. Refuses other
  // schema major versions.
  // Takes the document by value: pass it with std::move to spare a copy.
  static ExportedProgram parse(Json json, const std::string& where);
  // A copy without the graph's inputs, outputs, nodes and tensor values and
  // the signature's specs: what an emitter fills in again.
  ExportedProgram shell() const;
  Json toJson() const;
};

// One entry of a payload config (data/weights/*_weights_config.json).
struct PayloadMeta {
  std::string path_name;  // "weight_0", record under data/weights/
  bool is_param = false;
  bool use_pickle = false;
  std::optional<TensorMeta> tensor_meta;  // absent for custom objects
  Json raw;
  static PayloadMeta parse(const Json& json, const std::string& where);
  Json toJson() const;
};

struct PayloadConfig {
  std::vector<std::pair<std::string, PayloadMeta>> entries;  // FQN -> meta, file order
  Json raw;
  static PayloadConfig parse(const Json& json, const std::string& where);
  Json toJson() const;
  const PayloadMeta* tryFind(const std::string& fqn) const;
};

}  // namespace qatfold::program
