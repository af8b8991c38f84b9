#include "qatfold/graph/edit_log.h"

#include <type_traits>

namespace qatfold::graph {

// The log grows by moves; a copy per reallocation would cost more than the edits.
static_assert(std::is_nothrow_move_constructible_v<Edit>);

Edit& EditLog::add(Edit::Kind kind) {
  Edit& edit = edits_.emplace_back();
  edit.kind = kind;
  return edit;
}

void EditLog::replacedAllUses(const Value& from, const Value& to) {
  Edit& edit = add(Edit::Kind::kReplaceAllUses);
  edit.value = from.name();
  edit.other = to.name();
}

void EditLog::setInput(const Node& node, const std::string& operand, const Value& value) {
  Edit& edit = add(Edit::Kind::kSetInput);
  edit.node = node.name();
  edit.operand = operand;
  edit.value = value.name();
}

void EditLog::setArgument(const Node& node, const std::string& operand, const program::Argument& argument) {
  Edit& edit = add(Edit::Kind::kSetArgument);
  edit.node = node.name();
  edit.operand = operand;
  edit.argument = argument;
}

void EditLog::insertedNode(const Node& node, const Node* anchor) {
  Edit& edit = add(Edit::Kind::kInsertNode);
  edit.node = node.name();
  edit.value = node.output()->name();
  edit.anchor = anchor != nullptr ? anchor->name() : "";
  edit.target = node.target();
  for (const Operand& operand : node.operands()) {
    const program::Argument& argument = operand.argument();
    if (!argument.refersToTensors()) {
      edit.operands.push_back({operand.name, argument});
      continue;
    }
    std::vector<std::optional<std::string>> names;
    for (const Value* value : operand.values) names.push_back(value ? std::optional(value->name()) : std::nullopt);
    edit.operands.push_back({operand.name, argument.withTensorReferences(names)});
  }
  if (node.metadataSource() != nullptr) edit.metadata_source = node.metadataSource()->name();
  if (node.output()->meta() != nullptr) edit.meta = *node.output()->meta();
}

void EditLog::erasingNode(const Node& node) {
  Edit& edit = add(Edit::Kind::kEraseNode);
  edit.node = node.name();
}

Edit& EditLog::addConstantEdit(Edit::Kind kind, const Value& placeholder) {
  Edit& edit = add(kind);
  edit.value = placeholder.name();
  edit.fqn = placeholder.target();
  edit.input_kind = placeholder.inputKind();
  return edit;
}

void EditLog::addedConstant(const Value& placeholder) {
  Edit& edit = addConstantEdit(Edit::Kind::kAddConstant, placeholder);
  edit.meta = *placeholder.meta();
  edit.storage = placeholder.payload()->storage;
}

void EditLog::replacedTensorData(const Value& placeholder) {
  Edit& edit = addConstantEdit(Edit::Kind::kReplaceTensorData, placeholder);
  edit.meta = *placeholder.meta();
  edit.storage = placeholder.payload()->storage;
}

void EditLog::removingConstant(const Value& placeholder) { addConstantEdit(Edit::Kind::kRemoveConstant, placeholder); }

const char* editKindName(Edit::Kind kind) {
  switch (kind) {
    case Edit::Kind::kReplaceAllUses: return "replace_all_uses";
    case Edit::Kind::kSetInput: return "set_input";
    case Edit::Kind::kSetArgument: return "set_argument";
    case Edit::Kind::kInsertNode: return "insert_node";
    case Edit::Kind::kEraseNode: return "erase_node";
    case Edit::Kind::kAddConstant: return "add_constant";
    case Edit::Kind::kReplaceTensorData: return "replace_tensor_data";
    case Edit::Kind::kRemoveConstant: return "remove_constant";
  }
  return "?";
}

}  // namespace qatfold::graph
