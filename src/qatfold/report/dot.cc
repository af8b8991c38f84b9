#include "qatfold/report/dot.h"

#include <map>
#include <set>
#include <sstream>
#include <string_view>

#include "qatfold/quant/dialect.h"

namespace qatfold::report {
namespace {

// "torch.ops.aten.conv2d.default" -> "conv2d"; "...quantize_per_tensor.default" -> "quantize_per_tensor".
std::string shortTarget(const std::string& target) {
  std::string name = target;
  for (const std::string_view prefix :
       {std::string_view("torch.ops.aten."), quant::kLibrary, std::string_view("torch.ops.")}) {
    if (name.rfind(prefix, 0) == 0) {
      name.erase(0, prefix.size());
      break;
    }
  }
  if (auto dot = name.find('.'); dot != std::string::npos) name.erase(dot);
  return name;
}

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

const char* kindLabel(program::InputKind kind) {
  switch (kind) {
    case program::InputKind::kParameter: return "parameter";
    case program::InputKind::kBuffer: return "buffer";
    case program::InputKind::kTensorConstant: return "constant";
    case program::InputKind::kUserInput: return "input";
    default: return "input";
  }
}

// Colours by role, so a chain reads at a glance.
const char* fillFor(const std::string& op) {
  if (op.find("conv") != std::string::npos) return "#9ecae1";
  if (op.find("batch_norm") != std::string::npos) return "#fc9272";
  if (op.find("quantize") != std::string::npos) return "#e5e5e5";
  return "#ffffff";
}

class DotWriter {
 public:
  DotWriter(const graph::Graph& graph, const std::string& title) : graph_(graph) {
    out_ << "digraph qatfold {\n  label=\"" << escape(title) << "\"; labelloc=t; rankdir=TB;\n"
         << "  node [fontname=\"Helvetica\", fontsize=10];\n";
  }

  // Draws `nodes` (all when null) with their inputs and outputs.
  std::string draw(const std::set<const graph::Node*>* nodes) {
    for (const graph::Node* node : graph_.nodes()) {
      if (nodes != nullptr && nodes->count(node) == 0) continue;
      const std::string op = shortTarget(node->target());
      const std::string label = node->name() == op ? op : op + "\n" + node->name();
      out_ << "  " << id(node) << " [shape=box, style=filled, fillcolor=\"" << fillFor(op) << "\", label=\""
           << escape(label) << "\"];\n";
      for (const graph::Value* input : node->inputValues()) edgeFrom(input, node, nodes);
      for (const graph::Value* output : node->outputs()) {
        for (const graph::Node* user : output->users()) {
          if (nodes != nullptr && nodes->count(user) == 0) {
            const std::string to = cut();
            out_ << "  " << id(node) << " -> " << to << ";\n";
            break;
          }
        }
        if (output->isGraphOutput()) {
          const std::string to = outputNode();
          out_ << "  " << id(node) << " -> " << to << ";\n";
        }
      }
    }
    out_ << "}\n";
    return out_.str();
  }

 private:
  void edgeFrom(const graph::Value* value, const graph::Node* user, const std::set<const graph::Node*>* nodes) {
    if (value == nullptr) return;
    if (value->isPlaceholder()) {
      auto [it, inserted] = placeholders_.emplace(value, "p" + std::to_string(placeholders_.size()));
      if (inserted) {
        std::string label = value->target().empty() ? value->name() : value->target();
        out_ << "  " << it->second << " [shape=ellipse, label=\"" << escape(label) << "\\n("
             << kindLabel(value->inputKind()) << ")\"];\n";
      }
      out_ << "  " << it->second << " -> " << id(user) << ";\n";
    } else if (nodes == nullptr || nodes->count(value->producer()) != 0) {
      out_ << "  " << id(value->producer()) << " -> " << id(user) << ";\n";
    } else {
      const std::string from = cut();
      out_ << "  " << from << " -> " << id(user) << ";\n";
    }
  }

  std::string id(const graph::Node* node) {
    auto [it, inserted] = ids_.emplace(node, "n" + std::to_string(ids_.size()));
    return it->second;
  }
  std::string cut() {
    std::string name = "cut" + std::to_string(cuts_++);
    out_ << "  " << name << " [shape=plaintext, label=\"...\"];\n";
    return name;
  }
  std::string outputNode() {
    if (!output_declared_) {
      out_ << "  graph_output [shape=doublecircle, label=\"output\"];\n";
      output_declared_ = true;
    }
    return "graph_output";
  }

  const graph::Graph& graph_;
  std::ostringstream out_;
  std::map<const graph::Node*, std::string> ids_;
  std::map<const graph::Value*, std::string> placeholders_;
  int cuts_ = 0;
  bool output_declared_ = false;
};

}  // namespace

std::string graphToDot(const graph::Graph& graph, const std::string& title) {
  return DotWriter(graph, title).draw(nullptr);
}

std::string neighbourhoodToDot(const graph::Graph& graph, const std::vector<const graph::Node*>& centers, int up,
                               int down, const std::string& title) {
  std::set<const graph::Node*> chosen(centers.begin(), centers.end());
  std::vector<std::pair<const graph::Node*, int>> frontier;
  for (const graph::Node* center : centers) frontier.emplace_back(center, 0);
  for (std::size_t i = 0; i < frontier.size(); ++i) {  // producers
    auto [node, depth] = frontier[i];
    if (depth == up) continue;
    for (const graph::Value* input : node->inputValues()) {
      if (input == nullptr || input->producer() == nullptr) continue;
      if (chosen.insert(input->producer()).second) frontier.emplace_back(input->producer(), depth + 1);
    }
  }
  frontier.clear();
  for (const graph::Node* center : centers) frontier.emplace_back(center, 0);
  for (std::size_t i = 0; i < frontier.size(); ++i) {  // users
    auto [node, depth] = frontier[i];
    if (depth == down) continue;
    for (const graph::Value* output : node->outputs()) {
      for (const graph::Node* user : output->users()) {
        if (chosen.insert(user).second) frontier.emplace_back(user, depth + 1);
      }
    }
  }
  return DotWriter(graph, title).draw(&chosen);
}

}  // namespace qatfold::report
