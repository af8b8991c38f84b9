// Programs written as text graphs (graph/text.h) for the pass tests: three
// small bases and a way to edit them, so a case reads as the one thing it
// changes, and no test depends on the names an exporter generates.
#pragma once

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "qatfold/graph/text.h"
#include "qatfold/loaded_program.h"
#include "qatfold/passes/pipeline.h"

namespace qatfold::testing {

// A Cadence QAT chain: quantized conv with an int32 bias, q/dq after it, the
// scale div, the orig_bias add and an eval batch_norm.
inline const std::string kQatChain = R"(
input %x: float32[1, 2, 4, 4]
parameter %bn_w = "bn.weight": float32[2] = [1.5, 0.5]
parameter %bn_b = "bn.bias": float32[2] = [0.25, -0.25]
parameter %orig_b = "conv.bias": float32[2] = [0.1, -0.2]
buffer %w_q = "_frozen_param0": int8[2, 2, 1, 1] = [1, 2, 3, 4]
buffer %b_q = "_frozen_param1": int32[2] = [10, -20]
buffer %mean = "bn.running_mean": float32[2] = [0.5, -0.5]
buffer %var = "bn.running_var": float32[2] = [4, 0.25]
%x_q = quantized_decomposed.quantize_per_tensor.default(input=%x, scale=0.05, zero_point=0, quant_min=-128, quant_max=127, dtype=int8): int8[1, 2, 4, 4]
%x_dq = quantized_decomposed.dequantize_per_tensor.default(input=%x_q, scale=0.05, zero_point=0, quant_min=-128, quant_max=127, dtype=int8): float32[1, 2, 4, 4]
%w_dq = quantized_decomposed.dequantize_per_tensor.default(input=%w_q, scale=0.01, zero_point=0, quant_min=-127, quant_max=127, dtype=int8): float32[2, 2, 1, 1]
%b_dq = quantized_decomposed.dequantize_per_tensor.default(input=%b_q, scale=0.0005, zero_point=0, quant_min=-2147483648, quant_max=2147483647, dtype=int32): float32[2]
%var_eps = aten.add.Tensor(self=%var, other=1e-05): float32[2]
%std = aten.sqrt.default(self=%var_eps): float32[2]
%scale = aten.div.Tensor(self=%bn_w, other=%std): float32[2]
%conv = aten.conv2d.default(input=%x_dq, weight=%w_dq, bias=%b_dq): float32[1, 2, 4, 4]
%y_q = quantized_decomposed.quantize_per_tensor.default(input=%conv, scale=0.1, zero_point=0, quant_min=-128, quant_max=127, dtype=int8): int8[1, 2, 4, 4]
%y_dq = quantized_decomposed.dequantize_per_tensor.default(input=%y_q, scale=0.1, zero_point=0, quant_min=-128, quant_max=127, dtype=int8): float32[1, 2, 4, 4]
%scale_r = aten.reshape.default(self=%scale, shape=[1, -1, 1, 1]): float32[1, 2, 1, 1]
%unscaled = aten.div.Tensor(self=%y_dq, other=%scale_r): float32[1, 2, 4, 4]
%orig_r = aten.reshape.default(self=%orig_b, shape=[1, -1, 1, 1]): float32[1, 2, 1, 1]
%biased = aten.add.Tensor(self=%unscaled, other=%orig_r): float32[1, 2, 4, 4]
%bn = aten.batch_norm.default(input=%biased, weight=%bn_w, bias=%bn_b, running_mean=%mean, running_var=%var, training=False, momentum=0.1, eps=1e-05, cudnn_enabled=False): float32[1, 2, 4, 4]
return %bn
)";

// The same chain after an unquantized conv with a float bias, in a float
// program (Cadence's quantizer leaves transposed convs so).
inline const std::string kFloatChain = R"(
input %x: float32[1, 2, 4, 4]
parameter %w = "conv.weight": float32[2, 2, 1, 1] = [1, 0, 0, 1]
parameter %b0 = "conv.b0": float32[2] = [0.5, 0.25]
parameter %bn_w = "bn.weight": float32[2] = [1.5, 0.5]
parameter %bn_b = "bn.bias": float32[2] = [0.25, -0.25]
parameter %orig_b = "conv.bias": float32[2] = [0.1, -0.2]
buffer %mean = "bn.running_mean": float32[2] = [0.5, -0.5]
buffer %var = "bn.running_var": float32[2] = [4, 0.25]
%var_eps = aten.add.Tensor(self=%var, other=1e-05): float32[2]
%std = aten.sqrt.default(self=%var_eps): float32[2]
%scale = aten.div.Tensor(self=%bn_w, other=%std): float32[2]
%conv = aten.conv2d.default(input=%x, weight=%w, bias=%b0): float32[1, 2, 4, 4]
%scale_r = aten.reshape.default(self=%scale, shape=[1, -1, 1, 1]): float32[1, 2, 1, 1]
%unscaled = aten.div.Tensor(self=%conv, other=%scale_r): float32[1, 2, 4, 4]
%orig_r = aten.reshape.default(self=%orig_b, shape=[1, -1, 1, 1]): float32[1, 2, 1, 1]
%biased = aten.add.Tensor(self=%unscaled, other=%orig_r): float32[1, 2, 4, 4]
%bn = aten.batch_norm.default(input=%biased, weight=%bn_w, bias=%bn_b, running_mean=%mean, running_var=%var, training=False, momentum=0.1, eps=1e-05, cudnn_enabled=False): float32[1, 2, 4, 4]
return %bn
)";

// A plain eval batch_norm right after a float conv, in a quantized program
// (the quantizer left the conv in float): FoldBatchNormIntoWeights's case.
inline const std::string kPlainBatchNorm = R"(
input %x: float32[1, 2, 4, 4]
parameter %w = "conv.weight": float32[2, 2, 1, 1] = [1, 0, 0, 1]
parameter %b = "conv.bias": float32[2] = [0.5, 0.25]
parameter %bn_w = "bn.weight": float32[2] = [1.5, 0.5]
parameter %bn_b = "bn.bias": float32[2] = [0.25, -0.25]
buffer %mean = "bn.running_mean": float32[2] = [0.5, -0.5]
buffer %var = "bn.running_var": float32[2] = [4, 0.25]
%x_q = quantized_decomposed.quantize_per_tensor.default(input=%x, scale=0.05, zero_point=0, quant_min=-128, quant_max=127, dtype=int8): int8[1, 2, 4, 4]
%x_dq = quantized_decomposed.dequantize_per_tensor.default(input=%x_q, scale=0.05, zero_point=0, quant_min=-128, quant_max=127, dtype=int8): float32[1, 2, 4, 4]
%conv = aten.conv2d.default(input=%x_dq, weight=%w, bias=%b): float32[1, 2, 4, 4]
%bn = aten.batch_norm.default(input=%conv, weight=%bn_w, bias=%bn_b, running_mean=%mean, running_var=%var, training=False, momentum=0.1, eps=1e-05, cudnn_enabled=False): float32[1, 2, 4, 4]
return %bn
)";

// A conv with per-channel int8 weights whose batch_norm torchao left behind
// its output quantization (XNNPACK's quantizer on padding="same"), with the
// quantize QAT trained on the batch_norm's output after it. Channel 1's
// batch_norm factor is negative.
inline const std::string kQuantizedBatchNorm = R"(
input %x: float32[1, 2, 4, 4]
buffer %w_q = "w_q": int8[2, 2, 1, 1] = [100, -20, 10, 127]
buffer %w_s = "w_s": float32[2] = [0.01, 0.02]
buffer %w_zp = "w_zp": int64[2] = [0, 0]
parameter %b = "conv.bias": float32[2] = [0.5, 0.25]
parameter %bn_w = "bn.weight": float32[2] = [1.5, -0.5]
parameter %bn_b = "bn.bias": float32[2] = [0.25, -0.25]
buffer %mean = "bn.running_mean": float32[2] = [0.5, -0.5]
buffer %var = "bn.running_var": float32[2] = [4, 0.25]
%x_q = quantized_decomposed.quantize_per_tensor.default(input=%x, scale=0.05, zero_point=0, quant_min=-128, quant_max=127, dtype=int8): int8[1, 2, 4, 4]
%x_dq = quantized_decomposed.dequantize_per_tensor.default(input=%x_q, scale=0.05, zero_point=0, quant_min=-128, quant_max=127, dtype=int8): float32[1, 2, 4, 4]
%w_dq = quantized_decomposed.dequantize_per_channel.default(input=%w_q, scales=%w_s, zero_points=%w_zp, axis=0, quant_min=-127, quant_max=127, dtype=int8): float32[2, 2, 1, 1]
%conv = aten.conv2d.default(input=%x_dq, weight=%w_dq, bias=%b): float32[1, 2, 4, 4]
%y_q = quantized_decomposed.quantize_per_tensor.default(input=%conv, scale=0.1, zero_point=0, quant_min=-128, quant_max=127, dtype=int8): int8[1, 2, 4, 4]
%y_dq = quantized_decomposed.dequantize_per_tensor.default(input=%y_q, scale=0.1, zero_point=0, quant_min=-128, quant_max=127, dtype=int8): float32[1, 2, 4, 4]
%bn = aten.batch_norm.default(input=%y_dq, weight=%bn_w, bias=%bn_b, running_mean=%mean, running_var=%var, training=False, momentum=0.1, eps=1e-05, cudnn_enabled=False): float32[1, 2, 4, 4]
%o_q = quantized_decomposed.quantize_per_tensor.default(input=%bn, scale=0.05, zero_point=3, quant_min=-128, quant_max=127, dtype=int8): int8[1, 2, 4, 4]
%o_dq = quantized_decomposed.dequantize_per_tensor.default(input=%o_q, scale=0.05, zero_point=3, quant_min=-128, quant_max=127, dtype=int8): float32[1, 2, 4, 4]
return %o_dq
)";

// `text` with each `from` replaced by its `to`; every `from` must occur
// exactly once, so a case cannot silently edit nothing.
inline std::string edited(std::string text, const std::vector<std::pair<std::string, std::string>>& edits) {
  for (const auto& [from, to] : edits) {
    const std::size_t at = text.find(from);
    if (at == std::string::npos || text.find(from, at + 1) != std::string::npos) {
      throw std::logic_error("the edit '" + from + "' does not match exactly once");
    }
    text.replace(at, from.size(), to);
  }
  return text;
}

// kPlainBatchNorm with no quantize/dequantize at all: a float program.
inline const std::string kFloatPlainBatchNorm =
    edited(kPlainBatchNorm, {{"%x_q = quantized_decomposed.quantize_per_tensor.default(input=%x, scale=0.05, "
                              "zero_point=0, quant_min=-128, quant_max=127, dtype=int8): int8[1, 2, 4, 4]\n",
                              ""},
                             {"%x_dq = quantized_decomposed.dequantize_per_tensor.default(input=%x_q, scale=0.05, "
                              "zero_point=0, quant_min=-128, quant_max=127, dtype=int8): float32[1, 2, 4, 4]\n",
                              ""},
                             {"input=%x_dq", "input=%x"}});

// A text program, folded.
struct TextFold {
  LoadedProgram loaded;
  std::string before;  // the graph as text, before the pipeline ran
  passes::FoldReport report;

  std::string after() const { return graph::printGraph(*loaded.graph); }
  const passes::SkippedBatchNorm* skipped(const std::string& name) const {
    for (const auto& s : report.skipped) {
      if (s.batch_norm == name) return &s;
    }
    return nullptr;
  }
};

inline TextFold foldText(const std::string& text, const passes::FoldOptions& options = {}) {
  TextFold f{LoadedProgram::fromText(text), "", {}};
  f.before = graph::printGraph(*f.loaded.graph);
  f.report = passes::runFoldPipeline(*f.loaded.graph, options);
  f.loaded.graph->lint();
  return f;
}

}  // namespace qatfold::testing
