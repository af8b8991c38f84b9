// The quantization dialect: which ops quantize and dequantize (torch's
// quantized_decomposed library, what every PT2E quantizer's convert_pt2e
// leaves), how their affine parameters are read, and the limits of the
// backends that consume them. The one place in the core that knows these
// names: passes ask it what a node is, reports and the Python layer ask it
// for the names (quantizationOps).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "qatfold/graph/graph.h"

namespace qatfold::quant {

// The library every op of the dialect lives in.
inline constexpr std::string_view kLibrary = "torch.ops.quantized_decomposed.";

enum class Op {
  kNone,  // not a quantize or dequantize this dialect reads
  kQuantizePerTensor,
  kDequantizePerTensor,
  kQuantizePerChannel,
  kDequantizePerChannel,
};

// The op `target` names ("torch.ops.quantized_decomposed.dequantize_per_tensor.default"),
// kNone for any other (the .tensor overloads, whose parameters are tensors, too).
Op opNamed(std::string_view target);
inline Op opOf(const graph::Node& node) { return opNamed(node.target()); }
// The full target of `op`, for a node a pass makes.
std::string_view targetOf(Op op);
// "dequantize_per_tensor": how FX and the reports name it.
std::string_view nameOf(Op op);
bool isQuantize(Op op);
bool isDequantize(Op op);
bool isPerChannel(Op op);
// Every op above but kNone.
const std::vector<Op>& ops();

// Whether `target` is an op of the dialect's library, read here or not.
bool inLibrary(std::string_view target);
// Whether any node of `graph` is (a program quantized at all).
bool holdsQuantization(const graph::Graph& graph);

// The arguments of a quantize/dequantize node, per tensor or per channel.
struct AffineQuantization {
  graph::Node* node = nullptr;
  Op op = Op::kNone;
  graph::Value* input = nullptr;
  bool per_channel = false;
  double scale = 0;                     // per tensor
  std::int64_t zero_point = 0;          // per tensor
  graph::Value* scales = nullptr;       // per channel: float tensor [C]
  graph::Value* zero_points = nullptr;  // per channel: integer tensor [C]
  std::int64_t axis = 0;
  std::int64_t quant_min = 0;
  std::int64_t quant_max = 0;
  program::ScalarType dtype = program::ScalarType::kUnknown;
};
// Reads a quantize_per_tensor, dequantize_per_tensor or dequantize_per_channel
// node (what the folds read; a per-channel quantize of activations is not
// produced by any quantizer); nullopt for any other node or when its
// parameters are not constants.
std::optional<AffineQuantization> readAffine(graph::Node* node);
// Whether two per-tensor quantizations map values alike: the same scale,
// zero point, range and dtype (a dequantize undoes its quantize exactly, and
// a quantize of that dequantize gives the same integers back).
bool sameParameters(const AffineQuantization& a, const AffineQuantization& b);

// What a backend that runs the folded program accepts, as named data.
struct BackendLimits {
  std::string_view backend;
  // Largest requantization scale (input scale * weight scale / output scale)
  // the backend takes, exclusive.
  float max_requantization_scale;
};
// XNNPACK's quantized convolution and fully connected rejects a
// requantization scale of 256 or more.
inline constexpr BackendLimits kXnnpack{"XNNPACK", 256.0f};

}  // namespace qatfold::quant
