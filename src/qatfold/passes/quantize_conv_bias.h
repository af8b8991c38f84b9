// QuantizeConvBias: gives every quantized convolution an int32 bias.
//
// The fold writes the BatchNorm shift into a conv's int32 bias, so each conv
// whose input and weight are dequantized first gets one:
//
//   Before:  y = conv(dq(x, s_in), dq(w, s_w), None | b_float)
//   After:   y = conv(dq(x, s_in), dq(w, s_w), dq(b_int32, s_b, 0, -2^31, 2^31-1, int32))
//
//   s_b = s_in * s_w                 (per-tensor weights; one Python-float product)
//   s_b[c] = float32(s_in) * s_w[c]  (per-channel weights; dequantize_per_channel)
//   b_int32 = 0 for a missing bias (or zeros_like(b), a constant expression
//   of zeros), else quantize(b_float, s_b) as torch's
//   quantize_per_tensor / quantize_per_channel compute it.
//
// A bias that is already dequantized from int32 is left alone. Convs whose
// input is not dequantized (float activations, a permute in between) are
// skipped, not asserted on.
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "qatfold/graph/graph.h"
#include "qatfold/passes/fold_report.h"
#include "qatfold/passes/patterns.h"

namespace qatfold::passes {

class QuantizeConvBias {
 public:
  enum class Action { kAddZeroBias, kQuantizeFloatBias };

  // Everything the rewrite needs, computed before the graph is touched.
  struct Match {
    graph::Node* conv = nullptr;
    Action action = Action::kAddZeroBias;
    graph::Value* float_bias = nullptr;  // kQuantizeFloatBias
    bool replace_in_place = false;       // the float bias feeds only this conv
    std::int64_t channels = 0;
    bool per_channel = false;
    double scale = 0;                  // per tensor
    std::vector<float> scales;         // per channel
    std::vector<std::int32_t> values;  // the int32 bias
  };
  using MatchResult = std::variant<Match, std::string>;  // a match, or why not

  // The int32 range of the biases it makes.
  static constexpr std::int64_t kQuantMin = -2147483648LL;
  static constexpr std::int64_t kQuantMax = 2147483647LL;

  MatchResult match(graph::Node& conv) const;
  // Whether `conv` is a convolution whose input is dequantized per tensor and
  // whose weight is dequantized: the convs this pass is about.
  static bool hasQuantizedInputs(const graph::Node& conv);
  void rewrite(graph::Graph& graph, const Match& match) const;
  // What the rewrite does, for the report.
  static const char* describe(const Match& match);
  // Runs over every convolution; returns whether the graph changed.
  bool run(graph::Graph& graph, FoldReport& report) const;
};

}  // namespace qatfold::passes
