// Export: the graph as an exported program again. What no mutation touched
// is handed on as its record text, for the writer to copy verbatim.
#include <algorithm>

#include "qatfold/graph/graph.h"

namespace qatfold::graph {

program::ExportedProgram Graph::toExportedProgram() const {
  program::ExportedProgram out = source_.exported.shell();
  std::vector<const Value*> tensors;
  for (const Value* placeholder : placeholders_) {
    out.graph.inputs.push_back(placeholder->input_argument_);
    out.signature.input_specs.push_back(placeholder->spec_);
    if (placeholder->meta_) tensors.push_back(placeholder);
  }
  for (const auto& node : nodes_) {
    for (const Value* output : node->outputs_) {
      if (output->meta_) tensors.push_back(output);
    }
    program::Node emitted;
    emitted.target = node->target_;
    emitted.name = node->name_;
    if (!node->source_.empty() && !node->changed_) {
      // Untouched: its record text says it all (see the header).
      emitted.source = node->source_;
      out.graph.nodes.push_back(std::move(emitted));
      continue;
    }
    emitted.metadata = node->metadata_;
    emitted.source = node->source_;
    emitted.changed = node->changed_;
    for (const Operand& operand : node->operands_) {
      program::NamedArgument named{operand.name, operand.argument(), operand.source, operand.changed,
                                   operand.keyword_only};
      if ((operand.source.empty() || operand.changed) && operand.argument().refersToTensors()) {
        std::vector<std::optional<std::string>> names;
        for (const Value* value : operand.values) {
          names.push_back(value ? std::optional<std::string>(value->name_) : std::nullopt);
        }
        named.arg = operand.argument().withTensorReferences(names);
      }
      emitted.inputs.push_back(std::move(named));
    }
    emitted.outputs = node->read_outputs_ ? *node->read_outputs_ : node->own_outputs_;
    out.graph.nodes.push_back(std::move(emitted));
  }
  for (const GraphOutput& output : outputs_) {
    program::Argument argument = output.argument;
    program::OutputSpec spec = output.spec;
    if (output.value != nullptr && *argument.tensorReferences()[0] != output.value->name_) {
      argument = program::Argument::tensor(output.value->name_);
      if (spec.arg.is("as_tensor")) {
        spec.arg = argument;
        spec.changed = true;
      }
    }
    out.graph.outputs.push_back(argument);
    out.signature.output_specs.push_back(std::move(spec));
  }
  std::sort(tensors.begin(), tensors.end(), [](const Value* a, const Value* b) { return a->order_ < b->order_; });
  for (const Value* value : tensors) {
    // A meta as read is exported as its text, like an untouched node.
    program::TensorMeta meta;
    if (value->meta_->source.empty()) meta = *value->meta_;
    else meta.source = value->meta_->source;
    out.graph.tensor_values.emplace_back(value->name_, std::move(meta));
  }
  return out;
}

}  // namespace qatfold::graph
