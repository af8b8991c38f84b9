#include "qatfold/passes/patterns.h"

#include <algorithm>

#include "qatfold/numerics/dequantize.h"
#include "qatfold/program/payload.h"

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

std::optional<ConstantFloats> constantFloats(const graph::Value* value) {
  if (value == nullptr) return std::nullopt;
  if (isConstantTensor(value)) {
    const TensorView view = value->payload()->view();
    if (view.meta().dtype != program::ScalarType::kFloat32) return std::nullopt;
    return ConstantFloats{view.values<float>(), false};
  }
  const auto dq = quant::readAffine(value->producer());
  if (!dq || !quant::isDequantize(dq->op) || !isConstantTensor(dq->input)) return std::nullopt;
  const TensorView view = dq->input->payload()->view();
  const program::ScalarType dtype = view.meta().dtype;
  if (dtype == program::ScalarType::kFloat32 || dtype == program::ScalarType::kFloat64) return std::nullopt;
  const std::vector<double> integers = view.asDoubles();
  if (!dq->per_channel) return ConstantFloats{numerics::dequantizePerTensor(integers, dq->scale, dq->zero_point), true};
  if (dq->axis != 0 || view.meta().rank() != 1 || !isConstantTensor(dq->scales) || !isConstantTensor(dq->zero_points)) {
    return std::nullopt;
  }
  const TensorView scales = dq->scales->payload()->view();
  const TensorView zero_points = dq->zero_points->payload()->view();
  const auto n = static_cast<std::int64_t>(integers.size());
  if (scales.meta().dtype != program::ScalarType::kFloat32 || scales.meta().numel() != n ||
      zero_points.meta().numel() != n) {
    return std::nullopt;
  }
  std::vector<std::int64_t> zps;
  for (double z : zero_points.asDoubles()) zps.push_back(static_cast<std::int64_t>(z));
  return ConstantFloats{numerics::dequantizePerChannel(integers, scales.values<float>(), zps), true};
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
