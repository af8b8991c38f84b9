// Import: a Program's exported program becomes the graph. Values borrow
// the program's tensor metas and arguments (the program outlives the graph)
// until a pass changes them.
#include <optional>
#include <unordered_map>

#include "qatfold/error.h"
#include "qatfold/graph/graph.h"

namespace qatfold::graph {

using program::InputKind;
using program::isConstantKind;

namespace {

// Whether a node after `index` outputs `name` (for a better message only).
bool definedLater(const std::vector<program::Node>& nodes, std::size_t index, const std::string& name) {
  for (std::size_t n = index + 1; n < nodes.size(); ++n) {
    for (const program::Argument& output : nodes[n].outputs) {
      bool found = false;
      output.forEachTensorReference(
          [&](const std::string* reference) { found = found || (reference && *reference == name); });
      if (found) return true;
    }
  }
  return false;
}

}  // namespace

Graph::Graph(const Program& program) : source_(program), weights_(program.weights), constants_(program.constants) {
  for (const auto* payloads : {&weights_, &constants_}) {
    for (const auto& payload : *payloads) payload_fqns_.insert(payload->fqn);
  }
  const auto& exported = program.exported;
  const auto& tensor_values = exported.graph.tensor_values;
  values_by_name_.reserve(exported.graph.inputs.size() + tensor_values.size());
  next_order_ = tensor_values.size();
  // torch lists tensor_values in the order the graph defines them, so the
  // next entry is almost always the one wanted; the index is built only
  // when it is not.
  std::size_t next_meta = 0;
  std::unordered_map<std::string_view, std::size_t> meta_index;
  auto find_meta = [&](const std::string& name) -> std::optional<std::size_t> {
    if (next_meta < tensor_values.size() && tensor_values[next_meta].first == name) return next_meta++;
    if (meta_index.empty()) {
      for (std::size_t i = 0; i < tensor_values.size(); ++i) meta_index.emplace(tensor_values[i].first, i);
    }
    const auto it = meta_index.find(name);
    if (it == meta_index.end()) return std::nullopt;
    next_meta = it->second + 1;
    return it->second;
  };
  // A tensor (as opposed to a symbolic or constant input) must have its meta.
  auto make_value = [&](const std::string& name, bool is_tensor) {
    const std::optional<std::size_t> index = find_meta(name);
    if (!index && is_tensor) throw Error("tensor '" + name + "' has no entry in the graph's tensor_values");
    const program::TensorMeta* meta = index ? &tensor_values[*index].second : nullptr;
    return newValue(name, meta, std::nullopt, index ? *index : next_order_++);
  };

  for (std::size_t i = 0; i < exported.graph.inputs.size(); ++i) {
    const program::InputSpec& spec = exported.signature.input_specs[i];
    const program::Argument& argument = exported.graph.inputs[i];
    std::string name = spec.name;
    if (argument.is("as_tensor") && *argument.tensorReferences()[0] != spec.name) {
      throw Error("graph input " + std::to_string(i) + " is '" + *argument.tensorReferences()[0] +
                  "' but its signature entry names '" + spec.name + "'");
    }
    if (name.empty()) name = "input_" + std::to_string(i);
    Value* value = make_value(name, argument.is("as_tensor"));
    value->input_kind_ = spec.kind;
    value->target_ = spec.target;
    value->spec_ = spec;
    value->input_argument_ = argument;
    if (isConstantKind(spec.kind)) {
      std::shared_ptr<Payload> payload;
      if (spec.kind != InputKind::kTensorConstant) payload = program.findPayload(PayloadSection::kWeights, spec.target);
      if (!payload) payload = program.findPayload(PayloadSection::kConstants, spec.target);
      if (!payload) throw Error("input '" + name + "' is bound to '" + spec.target + "', which has no payload");
      value->payload_ = std::move(payload);
    }
    placeholders_.push_back(value);
  }

  for (std::size_t n = 0; n < exported.graph.nodes.size(); ++n) {
    const program::Node& source_node = exported.graph.nodes[n];
    auto node = std::make_unique<Node>();
    node->target_ = source_node.target;
    node->metadata_ = source_node.metadata;
    node->source_ = source_node.source;
    node->name_ = source_node.name;
    Node* raw_node = node.get();
    node->operands_.reserve(source_node.inputs.size());
    for (const program::NamedArgument& input : source_node.inputs) {
      Operand operand;
      operand.name = input.name;
      operand.source = input.source;
      operand.keyword_only = input.keyword_only;
      operand.read_argument = &input.arg;
      input.arg.forEachTensorReference([&](const std::string* reference) {
        Value* value = nullptr;
        if (reference) {
          value = tryGetValue(*reference);
          if (value == nullptr) {
            const std::string who = node->name_.empty() ? source_node.target : node->name_;
            if (definedLater(exported.graph.nodes, n, *reference)) {
              throw Error("node '" + who + "' uses value '" + *reference +
                          "' before it is defined (the graph has a cycle or is out of order)");
            }
            throw Error("node '" + who + "' uses undefined value '" + *reference + "'");
          }
        }
        operand.values.push_back(value);
      });
      node->operands_.push_back(std::move(operand));
    }
    node->read_outputs_ = &source_node.outputs;
    node->outputs_.reserve(source_node.outputs.size());
    for (const program::Argument& output : source_node.outputs) {
      if (output.refersToTensors()) {
        output.forEachTensorReference([&](const std::string* reference) {
          if (!reference) return;
          Value* value = make_value(*reference, true);
          value->producer_ = raw_node;
          node->outputs_.push_back(value);
        });
      } else if (!output.isNone()) {
        node->has_untracked_outputs_ = true;
      }
    }
    if (node->name_.empty())
      node->name_ = node->outputs_.empty() ? "node_" + std::to_string(n) : node->outputs_[0]->name();
    for (Operand& operand : node->operands_) {
      for (Value* value : operand.values) {
        if (value != nullptr) addUse(value, raw_node);
      }
    }
    nodes_.push_back(std::move(node));
    nodes_.back()->position_ = std::prev(nodes_.end());
  }

  for (std::size_t i = 0; i < exported.graph.outputs.size(); ++i) {
    GraphOutput output{exported.graph.outputs[i], nullptr, exported.signature.output_specs[i]};
    if (output.argument.is("as_tensor")) {
      const std::string name = *output.argument.tensorReferences()[0];
      output.value = tryGetValue(name);
      if (output.value == nullptr) throw Error("graph output '" + name + "' is not defined");
      if (output.spec.arg.is("as_tensor") && *output.spec.arg.tensorReferences()[0] != name) {
        throw Error("graph output " + std::to_string(i) + " is '" + name + "' but its signature entry names '" +
                    *output.spec.arg.tensorReferences()[0] + "'");
      }
      ++output.value->output_uses_;
    }
    outputs_.push_back(std::move(output));
  }
  for (Value* placeholder : placeholders_) placeholder->initially_used_ = placeholder->useCount() > 0;
}

}  // namespace qatfold::graph
