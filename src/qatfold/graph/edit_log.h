// The mutations of a graph as a list of primitive edits, for a front end
// that mirrors them on its own copy of the program: the FX front door
// replays them on an ExportedProgram's graph, signature, state_dict and
// constants (python/qatfold/_fx.py).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qatfold/graph/graph.h"

namespace qatfold::graph {

struct Edit {
  enum class Kind {
    kReplaceAllUses,     // every use of `value` now reads `other`
    kSetInput,           // operand `operand` of node `node` now reads `value`
    kSetArgument,        // constant operand `operand` of node `node` is now `argument`
    kInsertNode,         // node `node` (target, operands, meta) inserted before `anchor` ("" = at the end)
    kEraseNode,          // node `node` erased
    kAddConstant,        // placeholder `value` bound to `fqn` (kind, meta, storage) added
    kReplaceTensorData,  // the tensor behind placeholder `value` is now `storage` viewed as `meta`
    kRemoveConstant,     // placeholder `value` and its signature entry removed
  };
  // An operand of an inserted node: the value names it reads, in the shape
  // of `argument` (a tensor, a list of tensors), or a constant argument.
  struct Operand {
    std::string name;
    program::Argument argument;  // tensor references name the values
  };

  Kind kind;
  std::string node;
  std::string value;
  std::string other;
  std::string operand;
  std::string anchor;
  std::string target;
  std::vector<Operand> operands;
  std::optional<program::Argument> argument;  // kSetArgument
  std::string metadata_source;                // kInsertNode: copy the front end's node metadata from this node
  std::optional<program::TensorMeta> meta;
  program::InputKind input_kind = program::InputKind::kUserInput;
  std::string fqn;
  std::shared_ptr<const Storage> storage;
};

// Records the edits of the graph it listens to, in order.
class EditLog : public GraphListener {
 public:
  const std::vector<Edit>& edits() const { return edits_; }
  // The edits, moved out (the log is empty after).
  std::vector<Edit> takeEdits() { return std::move(edits_); }

  void replacedAllUses(const Value& from, const Value& to) override;
  void setInput(const Node& node, const std::string& operand, const Value& value) override;
  void setArgument(const Node& node, const std::string& operand, const program::Argument& argument) override;
  void insertedNode(const Node& node, const Node* anchor) override;
  void erasingNode(const Node& node) override;
  void addedConstant(const Value& placeholder) override;
  void replacedTensorData(const Value& placeholder) override;
  void removingConstant(const Value& placeholder) override;

 private:
  Edit& add(Edit::Kind kind);
  // An edit of a constant placeholder: its name, FQN and kind filled in.
  Edit& addConstantEdit(Edit::Kind kind, const Value& placeholder);
  std::vector<Edit> edits_;
};

const char* editKindName(Edit::Kind kind);

}  // namespace qatfold::graph
