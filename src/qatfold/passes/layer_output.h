// What a quantized conv or linear's output passes through before its plain
// batch_norm reads it (FoldBatchNormIntoWeightScales' pattern), as the
// quantizers leave it:
//
//   layer -> batch_norm                 the layer and its batch_norm annotated as one unit,
//                                       quantized only after it (Arm, NXP, Core ML)
//   layer -> q -> dq -> batch_norm      one output quantization, one set of parameters
//   layer -> q -> dq -> ... -> batch_norm
//                                       what a look-through pattern sees past ("...")
//
// A look-through is a small pattern of its own file: given the value the
// batch_norm (or the look-through after it) reads, and that reader, it says whether its shape
// is there, and if so the value behind it, or why it cannot be seen past. The
// nodes it passes are dead once the batch_norm folds (the fold replaces the
// layer's output quantization), so it checks that nothing else reads them.
// A new leftover shape between a layer and its batch_norm is one look-through
// file, its row in kLookThroughs (layer_output.cc) and its refusal rows.
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "qatfold/graph/graph.h"
#include "qatfold/passes/refusal.h"
#include "qatfold/quant/dialect.h"

namespace qatfold::passes {

// What a look-through passed: the value behind it, the node of the pattern
// that reads that value (the only reader it may have), and what it saw, said
// for the fold report ("a second quantize/dequantize with the same parameters").
struct LookedThrough {
  graph::Value* behind = nullptr;
  const graph::Node* reader = nullptr;
  std::string description;
};
// nullopt: not this look-through's shape. `reader` is the node that reads
// `read` in the pattern; any other reader of a value the look-through passes
// is its refusal.
using LookThrough = std::optional<std::variant<LookedThrough, Refusal>> (*)(graph::Value& read,
                                                                            const graph::Node& reader);

struct LayerOutput {
  graph::Node* layer = nullptr;
  // The layer's output quantization; both null when the batch_norm reads
  // the layer directly.
  std::optional<quant::AffineQuantization> quantize;
  std::optional<quant::AffineQuantization> dequantize;
  bool direct() const { return !quantize.has_value(); }
  // What the look-throughs passed between the pair and the batch_norm, in order.
  std::vector<std::string> looked_through;
};

// The quantized (dequantized-weight) layer behind `batch_norm`, which reads
// `input`, or why not: not-after-conv when no layer is there, a sharing
// refusal when something outside the pattern reads a value in between.
std::variant<LayerOutput, Refusal> findLayerOutput(graph::Node& batch_norm, graph::Value& input);

}  // namespace qatfold::passes
