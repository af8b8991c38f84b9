// Look-through (layer_output.h) of a back-to-back quantize/dequantize pair:
// Qualcomm's QnnQuantizer with per-channel weights annotates a linear's or
// conv3d's output and its batch_norm's input each with an observer of its
// own, and convert_pt2e leaves two pairs between them:
//
//   layer -> q1 -> dq1 -> q2 -> dq2 -> batch_norm
//
// With the same parameters q2(dq1(v)) gives v back: the second pair is a
// no-op. With other parameters it re-rounds the layer's output onto a second
// grid. Folding the batch_norm replaces both (the folded output's
// quantization is chosen for BN(y): trained after the batch_norm, or
// calibrated), so the fold sees past the pair either way and the report says
// which it was. Refused: a value of the pair read outside the pattern.
#pragma once

#include <optional>
#include <variant>

#include "qatfold/passes/layer_output.h"

namespace qatfold::passes {

std::optional<std::variant<LookedThrough, Refusal>> lookThroughRequantizePair(graph::Value& read,
                                                                              const graph::Node& reader);

}  // namespace qatfold::passes
