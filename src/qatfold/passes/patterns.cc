#include "qatfold/passes/patterns.h"

#include <algorithm>

namespace qatfold::passes {

bool isConvolution(const graph::Node& node) {
  static const std::string_view kConvolutions[] = {
      "torch.ops.aten.conv1d.default",         "torch.ops.aten.conv2d.default",
      "torch.ops.aten.conv3d.default",         "torch.ops.aten.conv1d.padding",
      "torch.ops.aten.conv2d.padding",         "torch.ops.aten.conv3d.padding",
      "torch.ops.aten.convolution.default",    "torch.ops.aten.conv_transpose1d.default",
      "torch.ops.aten.conv_transpose2d.input", "torch.ops.aten.conv_transpose3d.input",
  };
  return std::find(std::begin(kConvolutions), std::end(kConvolutions), node.target()) != std::end(kConvolutions);
}

bool isChannelProducer(const graph::Node& node) { return isConvolution(node) || node.target() == op::kLinear; }

std::string opKind(const std::string& target) {
  std::string name = target;
  const std::string prefix = "torch.ops.aten.";
  if (name.rfind(prefix, 0) == 0) name.erase(0, prefix.size());
  if (auto dot = name.find('.'); dot != std::string::npos) name.erase(dot);
  return name;
}

std::string whyNoQatChain(const graph::Node& layer) {
  const std::string kind = opKind(layer.target());
  const std::string_view target = layer.target();
  if (target.size() > 8 && target.substr(target.size() - 8) == ".padding") {
    return "torchao's QAT patterns match no conv with string padding ('same' or 'valid')";
  }
  if (kind == "conv3d") return "torchao's QAT patterns cover conv1d and conv2d, not conv3d";
  if (kind == "linear") return "torchao's QAT patterns cover convolutions, not linear";
  return "torchao built none for this " + kind;
}

bool isTrainingBatchNorm(const graph::Node& node) {
  if (node.target() != op::kBatchNorm) return false;
  const program::Argument* training = node.tryGetArgument("training");
  return training != nullptr && training->asBool() == true;
}

bool isBatchNorm(const graph::Node& node) {
  return node.target() == op::kBatchNorm || node.target() == op::kBatchNormNoTraining;
}

bool isReshape(const graph::Node& node) { return node.target() == op::kReshape || node.target() == op::kView; }

graph::Node* producerWith(const graph::Value* value, std::string_view target) {
  if (value == nullptr || value->producer() == nullptr || value->producer()->target() != target) return nullptr;
  return value->producer();
}

bool isConstantTensor(const graph::Value* value) {
  return value != nullptr && value->isConstantTensor() && value->payload()->storage != nullptr &&
         value->payload()->meta.tensor_meta.has_value() && !value->payload()->meta.tensor_meta->symbolic;
}

std::optional<std::string> outsideUse(const graph::Value& value, const std::vector<const graph::Node*>& allowed) {
  if (value.isGraphOutput()) return "'" + value.name() + "' is also a graph output";
  for (const graph::Node* user : value.users()) {
    if (std::find(allowed.begin(), allowed.end(), user) == allowed.end()) {
      return "'" + value.name() + "' is also used by '" + user->name() + "' (" + user->target() + ")";
    }
  }
  return std::nullopt;
}

std::string modulePath(const graph::Node& node) {
  // nn_module_stack is "key,path,type;key,path,type;..." outermost first.
  const std::optional<std::string> found = node.metadata().stringValue("nn_module_stack");
  if (!found) return "";
  const std::string& stack = *found;
  std::size_t start = stack.rfind(';');
  std::string last = stack.substr(start == std::string::npos ? 0 : start + 1);
  auto first_comma = last.find(',');
  if (first_comma == std::string::npos) return "";
  auto second_comma = last.find(',', first_comma + 1);
  return last.substr(first_comma + 1,
                     second_comma == std::string::npos ? std::string::npos : second_comma - first_comma - 1);
}

}  // namespace qatfold::passes
