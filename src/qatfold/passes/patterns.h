// Small matchers shared by the passes: op kinds, constant tensors and "used
// only inside the pattern". What quantizes and dequantizes is the
// quantization dialect's (quant/dialect.h).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qatfold/graph/graph.h"
#include "qatfold/quant/dialect.h"

namespace qatfold::passes {

namespace op {
inline constexpr std::string_view kBatchNorm = "torch.ops.aten.batch_norm.default";
inline constexpr std::string_view kBatchNormNoTraining = "torch.ops.aten._native_batch_norm_legit_no_training.default";
inline constexpr std::string_view kDiv = "torch.ops.aten.div.Tensor";
inline constexpr std::string_view kAdd = "torch.ops.aten.add.Tensor";
inline constexpr std::string_view kSqrt = "torch.ops.aten.sqrt.default";
inline constexpr std::string_view kReshape = "torch.ops.aten.reshape.default";
inline constexpr std::string_view kView = "torch.ops.aten.view.default";
inline constexpr std::string_view kLinear = "torch.ops.aten.linear.default";
inline constexpr std::string_view kZerosLike = "torch.ops.aten.zeros_like.default";
}  // namespace op

// aten convolutions whose bias is a per-output-channel vector: conv1d/2d/3d
// (.default, .padding), convolution, and the transposed forms.
bool isConvolution(const graph::Node& node);
// What a BatchNorm chain may follow: a convolution, or a linear (BatchNorm1d
// over features). The fold passes take both; bias preparation only convs.
bool isChannelProducer(const graph::Node& node);
bool isBatchNorm(const graph::Node& node);
// "torch.ops.aten.conv_transpose2d.input" -> "conv_transpose2d".
std::string opKind(const std::string& target);
// Why torchao's QAT fusion left quantized `layer` without a QAT chain, for
// a message: "torchao's QAT patterns match no conv with padding='same'".
std::string whyNoQatChain(const graph::Node& layer);
// A batch_norm that computes batch statistics (training=True): the program
// was exported from a model still in training mode.
bool isTrainingBatchNorm(const graph::Node& node);
// reshape or view.
bool isReshape(const graph::Node& node);

// The node producing `value` if its target is `target`, else null.
graph::Node* producerWith(const graph::Value* value, std::string_view target);

// The one definition of "constant": a placeholder bound to a parameter,
// buffer or lifted tensor constant, with readable (unpickled) data.
bool isConstantTensor(const graph::Value* value);

// The values of a float32 constant, or of a dequantize (per tensor, or per
// channel along axis 0) of an integer constant, evaluated as torch would
// (numerics/dequantize.h): the one place a constant dequantize is
// evaluated. nullopt for anything else.
struct ConstantFloats {
  std::vector<float> values;
  bool dequantized = false;
};
std::optional<ConstantFloats> constantFloats(const graph::Value* value);

// A user of `value` outside `allowed` (or the graph output), described for a
// message; nullopt when every use is allowed.
std::optional<std::string> outsideUse(const graph::Value& value, const std::vector<const graph::Node*>& allowed);

// The innermost module path of a node ("layer1.0.conv1"), or "".
std::string modulePath(const graph::Node& node);

}  // namespace qatfold::passes
