#include "qatfold/quant/dialect.h"

#include <array>
#include <string>

namespace qatfold::quant {
namespace {

struct Row {
  Op op;
  std::string_view name;
  std::string_view target;
};

constexpr std::array<Row, 4> kRows = {{
    {Op::kQuantizePerTensor, "quantize_per_tensor", "torch.ops.quantized_decomposed.quantize_per_tensor.default"},
    {Op::kDequantizePerTensor, "dequantize_per_tensor", "torch.ops.quantized_decomposed.dequantize_per_tensor.default"},
    {Op::kQuantizePerChannel, "quantize_per_channel", "torch.ops.quantized_decomposed.quantize_per_channel.default"},
    {Op::kDequantizePerChannel, "dequantize_per_channel",
     "torch.ops.quantized_decomposed.dequantize_per_channel.default"},
}};

const Row* rowOf(Op op) {
  for (const Row& row : kRows) {
    if (row.op == op) return &row;
  }
  return nullptr;
}

}  // namespace

Op opNamed(std::string_view target) {
  if (!inLibrary(target)) return Op::kNone;
  for (const Row& row : kRows) {
    if (row.target == target) return row.op;
  }
  return Op::kNone;
}

std::string_view targetOf(Op op) {
  const Row* row = rowOf(op);
  return row ? row->target : std::string_view();
}

std::string_view nameOf(Op op) {
  const Row* row = rowOf(op);
  return row ? row->name : std::string_view();
}

bool isQuantize(Op op) { return op == Op::kQuantizePerTensor || op == Op::kQuantizePerChannel; }
bool isDequantize(Op op) { return op == Op::kDequantizePerTensor || op == Op::kDequantizePerChannel; }
bool isPerChannel(Op op) { return op == Op::kQuantizePerChannel || op == Op::kDequantizePerChannel; }

const std::vector<Op>& ops() {
  static const std::vector<Op> all = [] {
    std::vector<Op> out;
    for (const Row& row : kRows) out.push_back(row.op);
    return out;
  }();
  return all;
}

bool inLibrary(std::string_view target) { return target.substr(0, kLibrary.size()) == kLibrary; }

bool holdsQuantization(const graph::Graph& graph) {
  for (const graph::Node* node : graph.nodes()) {
    if (inLibrary(node->target())) return true;
  }
  return false;
}

std::optional<AffineQuantization> readAffine(graph::Node* node) {
  if (node == nullptr) return std::nullopt;
  AffineQuantization q;
  q.node = node;
  q.op = opOf(*node);
  if (q.op != Op::kQuantizePerTensor && q.op != Op::kDequantizePerTensor && q.op != Op::kDequantizePerChannel) {
    return std::nullopt;
  }
  q.per_channel = isPerChannel(q.op);
  q.input = node->tryGetInput("input");
  auto int_arg = [node](const char* name) -> std::optional<std::int64_t> {
    const program::Argument* arg = node->tryGetArgument(name);
    return arg ? arg->asInt() : std::nullopt;
  };
  auto quant_min = int_arg("quant_min");
  auto quant_max = int_arg("quant_max");
  const program::Argument* dtype = node->tryGetArgument("dtype");
  if (q.input == nullptr || !quant_min || !quant_max || dtype == nullptr || !dtype->asScalarType()) return std::nullopt;
  q.quant_min = *quant_min;
  q.quant_max = *quant_max;
  q.dtype = *dtype->asScalarType();
  if (!q.per_channel) {
    const program::Argument* scale = node->tryGetArgument("scale");
    auto zero_point = int_arg("zero_point");
    if (scale == nullptr || !scale->asFloat() || !zero_point) return std::nullopt;
    q.scale = *scale->asFloat();
    q.zero_point = *zero_point;
  } else {
    q.scales = node->tryGetInput("scales");
    q.zero_points = node->tryGetInput("zero_points");
    auto axis = int_arg("axis");
    if (q.scales == nullptr || !axis) return std::nullopt;
    q.axis = *axis;
  }
  return q;
}

bool sameParameters(const AffineQuantization& a, const AffineQuantization& b) {
  return !a.per_channel && !b.per_channel && a.scale == b.scale && a.zero_point == b.zero_point &&
         a.quant_min == b.quant_min && a.quant_max == b.quant_max && a.dtype == b.dtype;
}

}  // namespace qatfold::quant
