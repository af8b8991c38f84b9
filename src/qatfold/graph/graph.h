// The graph IR: nodes and values with def-use lists, built from a Program
// and emitted back into one.
//
// The graph owns its nodes and values and cannot be copied. Users are kept
// in insertion order, nodes in program order, so every walk is
// deterministic. Lookups come in pairs: getX throws, tryGetX returns null.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "qatfold/program/program.h"
#include "qatfold/program/schema.h"

namespace qatfold::graph {

class Graph;
class Node;

// A named value: a graph input (placeholder) or a node output.
class Value {
 public:
  const std::string& name() const { return name_; }
  // Tensor metadata (dtype, shape), or null for non-tensor values.
  const program::TensorMeta* meta() const { return meta_; }
  // The node computing this value; null for placeholders.
  Node* producer() const { return producer_; }
  bool isPlaceholder() const { return producer_ == nullptr; }

  // Nodes using this value, each once, in the order the uses were made.
  std::vector<Node*> users() const;
  // Number of uses: one per operand slot, plus one per graph output.
  std::size_t useCount() const { return uses_.size() + output_uses_; }
  bool isGraphOutput() const { return output_uses_ > 0; }

  // Placeholders only: what the input binds to, and the tensor behind it.
  program::InputKind inputKind() const { return input_kind_; }
  // The parameter/buffer/constant FQN ("conv.weight"), empty otherwise.
  const std::string& target() const { return target_; }
  // The payload behind a parameter, buffer or tensor constant, else null.
  const std::shared_ptr<Payload>& payload() const { return payload_; }
  // True for parameters, buffers and lifted tensor constants with a payload.
  bool isConstantTensor() const { return payload_ != nullptr; }

 private:
  friend class Graph;
  std::string name_;
  // The program's meta while the value keeps it, else `own_meta_`.
  const program::TensorMeta* meta_ = nullptr;
  std::unique_ptr<program::TensorMeta> own_meta_;
  std::uint64_t order_ = 0;  // position in tensor_values when emitted
  Node* producer_ = nullptr;
  std::vector<Node*> uses_;
  std::size_t output_uses_ = 0;
  // Graph::lint's scratch: the run that saw the value defined, and the uses it counted.
  mutable std::uint64_t lint_run_ = 0;
  mutable std::size_t lint_uses_ = 0;
  mutable std::size_t lint_outputs_ = 0;
  program::InputKind input_kind_ = program::InputKind::kUserInput;
  std::string target_;
  std::shared_ptr<Payload> payload_;
  program::InputSpec spec_;
  program::Argument input_argument_;
  bool alive_ = true;
  // Used when the graph was built, or added by a pass: a constant is only
  // removed if a pass unused it (the exporter's unused inputs stay).
  bool initially_used_ = false;
};

// A node input: the schema name and argument, with tensor references
// resolved to values (null for None entries of optional tensor lists).
struct Operand {
  std::string name;
  std::vector<Value*> values;
  std::string_view source;    // the input as read; empty if new
  bool changed = false;       // its values no longer match `source`
  bool keyword_only = false;  // the op takes it by name only (after `*`)

  // Constants, and the shape of tensor references.
  const program::Argument& argument() const { return own_argument ? *own_argument : *read_argument; }
  void setArgument(program::Argument argument) {
    own_argument = std::make_unique<program::Argument>(std::move(argument));
  }
  // The program's argument while the operand keeps it (the program outlives
  // the graph), else the operand's own.
  const program::Argument* read_argument = nullptr;
  std::unique_ptr<program::Argument> own_argument;
};

// An operation: target, named operands, outputs, metadata.
class Node {
 public:
  const std::string& target() const { return target_; }
  // The node's name (torch's fx node name).
  const std::string& name() const { return name_; }
  const std::vector<Operand>& operands() const { return operands_; }
  // The operand named `name` (schema argument name), or null.
  const Operand* tryGetOperand(std::string_view name) const;
  // The single tensor value of operand `name` (positional index `index` as
  // fallback name lookup is not needed: serialized nodes name every input).
  Value* tryGetInput(std::string_view name) const;
  Value* getInput(std::string_view name) const;
  // The constant argument of operand `name`, or null.
  const program::Argument* tryGetArgument(std::string_view name) const;

  // Output values (one per tensor output, in order).
  const std::vector<Value*>& outputs() const { return outputs_; }
  Value* output(std::size_t index = 0) const { return outputs_.at(index); }
  // All values this node reads, in operand order (with repetition).
  std::vector<Value*> inputValues() const;
  const program::Metadata& metadata() const { return metadata_; }
  // For inserted nodes, the node their metadata came from (NodeSpec), or null.
  const Node* metadataSource() const { return metadata_source_; }

 private:
  friend class Graph;
  std::string target_;
  std::string name_;
  std::vector<Operand> operands_;
  // Shape of the outputs list: the program's for nodes read, else own.
  const std::vector<program::Argument>* read_outputs_ = nullptr;
  std::vector<program::Argument> own_outputs_;
  std::vector<Value*> outputs_;
  // Outputs that are not tensors (sym ints, ...); such nodes are never dead.
  bool has_untracked_outputs_ = false;
  program::Metadata metadata_;
  const Node* metadata_source_ = nullptr;
  std::string_view source_;  // the node as read; empty for new nodes
  bool changed_ = false;     // an operand changed since it was read
  std::list<std::unique_ptr<Node>>::iterator position_;
};

// Told of every mutation, after it is made (before, for erasures): how a
// front end that holds its own copy of the program (the FX front door)
// mirrors what the passes did, like MLIR's rewriter listener. One listener
// per graph; no pass knows of it.
class GraphListener {
 public:
  virtual ~GraphListener() = default;
  virtual void replacedAllUses(const Value& from, const Value& to) = 0;
  virtual void setInput(const Node& node, const std::string& operand, const Value& value) = 0;
  virtual void setArgument(const Node& node, const std::string& operand, const program::Argument& argument) = 0;
  // `node` was inserted before `anchor` (null: at the end).
  virtual void insertedNode(const Node& node, const Node* anchor) = 0;
  virtual void erasingNode(const Node& node) = 0;
  // A parameter, buffer or tensor constant placeholder was added.
  virtual void addedConstant(const Value& placeholder) = 0;
  virtual void replacedTensorData(const Value& placeholder) = 0;
  virtual void removingConstant(const Value& placeholder) = 0;
};

// Description of a node to insert: the operands name values or constants.
struct NodeSpec {
  std::string target;
  struct Input {
    std::string name;
    std::variant<Value*, program::Argument> value;
  };
  std::vector<Input> inputs;
  // Name of the source node: new value names derive from it.
  std::string name_hint;
  program::TensorMeta output_meta;  // one tensor output
  program::Metadata metadata;
  // The node `metadata` was copied from, if any: a front end copies its own
  // node metadata from there too.
  const Node* metadata_source = nullptr;
};

class Graph {
 public:
  // Builds the graph of `program`; throws Error on dangling names, values
  // defined twice or used before they are defined.
  explicit Graph(const Program& program);
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  ~Graph();

  // Nodes in program order.
  std::vector<Node*> nodes() const;
  // Placeholders in signature order.
  const std::vector<Value*>& placeholders() const { return placeholders_; }
  // Values returned by the graph (null for non-tensor outputs).
  std::vector<Value*> outputs() const;
  Value* tryGetValue(std::string_view name) const;
  Value* getValue(std::string_view name) const;
  // The placeholder bound to parameter/buffer/constant `fqn`, or null.
  Value* tryGetPlaceholderFor(std::string_view fqn) const;

  // ---- mutation -----------------------------------------------------------
  // Points every use of `from` (operands and graph outputs) at `to`.
  void replaceAllUsesWith(Value* from, Value* to);
  // Points operand `operand_name` of `node` at `value`. A missing operand is
  // added after operand `insert_after` (schema order), if that is given.
  void setInput(Node* node, std::string_view operand_name, Value* value, std::string_view insert_after = {});
  // Sets the constant operand `operand_name` of `node` (a scale, a zero
  // point) to `argument`; throws Error if the node has no such operand or
  // either names tensors.
  void setArgument(Node* node, std::string_view operand_name, program::Argument argument);
  // Inserts a node before `anchor` and returns it; its output value gets a
  // fresh name derived from `spec.name_hint`.
  Node* insertNodeBefore(Node* anchor, const NodeSpec& spec);
  // Erases a node whose outputs have no uses; throws Error otherwise.
  void eraseNode(Node* node);
  // Adds a parameter, buffer or tensor constant holding `storage` viewed as
  // `meta`, with a fresh placeholder named after `name_hint`.
  Value* addConstantTensor(program::InputKind kind, const std::string& fqn_hint, const std::string& name_hint,
                           program::TensorMeta meta, std::shared_ptr<const Storage> storage);
  // Points placeholder `placeholder` at new bytes (a new storage it alone
  // views), leaving other views of its old storage untouched.
  void replaceTensorData(Value* placeholder, program::TensorMeta meta, std::shared_ptr<const Storage> storage);
  // Removes nodes without side effects whose outputs are unused; returns
  // how many were removed.
  std::size_t eliminateDeadCode();
  // Removes parameter, buffer and tensor-constant placeholders that had uses
  // when the graph was built (or were added since) and have none now, with
  // their signature entries and payloads; returns how many. Inputs the
  // exporter left unused stay, so the state_dict keeps its keys.
  std::size_t removeUnusedConstants();

  // Tells `listener` (not owned; null for none) of every mutation from now on.
  void setListener(GraphListener* listener) { listener_ = listener; }

  // How many mutations the graph has seen since it was built; 0 means it
  // still describes its source program exactly.
  std::uint64_t mutationCount() const { return mutations_; }

  // Checks every invariant (def-before-use, use lists, names, signature);
  // throws Error describing the first violation. It counts on scratch
  // fields of the values, so, like a mutation, it needs the graph to itself.
  void lint() const;

  // ---- emission ------------------------------------------------------------
  // The exported program, weights and constants as they now stand. A node
  // no mutation touched is exported as its record text (program::Node::
  // source) with its target and name, and no other fields: the writer copies
  // it verbatim, and nothing else needs them (the source program has them).
  program::ExportedProgram toExportedProgram() const;
  const std::vector<std::shared_ptr<Payload>>& weights() const { return weights_; }
  const std::vector<std::shared_ptr<Payload>>& constants() const { return constants_; }
  const Program& source() const { return source_; }

 private:
  // A value with the program's meta `read` (may be null) or, if given, its own.
  Value* newValue(const std::string& name, const program::TensorMeta* read, std::optional<program::TensorMeta> own,
                  std::uint64_t order);
  std::string freshName(const std::string& hint);
  void addUse(Value* value, Node* user);
  void removeUse(Value* value, Node* user);
  // Counts the mutation and, in Debug builds, lints.
  void afterMutation();

  const Program& source_;
  std::list<std::unique_ptr<Node>> nodes_;
  std::vector<std::unique_ptr<Value>> values_;
  // Keys view the values' own names (a value's name never changes).
  std::unordered_map<std::string_view, Value*> values_by_name_;
  std::vector<Value*> placeholders_;
  struct GraphOutput {
    program::Argument argument;
    Value* value = nullptr;  // for as_tensor outputs
    program::OutputSpec spec;
  };
  std::vector<GraphOutput> outputs_;
  std::vector<std::shared_ptr<Payload>> weights_;
  std::vector<std::shared_ptr<Payload>> constants_;
  std::set<std::string, std::less<>> payload_fqns_;  // of weights_ and constants_
  std::uint64_t next_order_ = 0;
  std::uint64_t mutations_ = 0;
  mutable std::uint64_t lint_runs_ = 0;
  GraphListener* listener_ = nullptr;
};

}  // namespace qatfold::graph
