// What a fold run did: the outcome of every batch_norm (folded, with its
// figures, or kept, with its refusal) and of the bias preparation.
// report/fold_report.h renders it as JSON and text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "qatfold/numerics/output_range.h"
#include "qatfold/passes/fold_options.h"
#include "qatfold/passes/refusal.h"
#include "qatfold/program/json.h"

namespace qatfold::graph {
class Node;
}  // namespace qatfold::graph

namespace qatfold::passes {

// A conv whose bias the bias-preparation step created or quantized.
struct PreparedBias {
  std::string conv;
  std::string action;  // "added a zero int32 bias", "quantized the float bias to int32"
};

// A conv-BN chain folded into its conv's bias.
struct FoldedConv {
  std::string conv;
  std::string conv_target;
  std::string module_path;
  std::string batch_norm;
  std::int64_t channels = 0;
  bool float_bias = false;      // folded into a float bias (no quantized output)
  bool scaled_weights = false;  // a plain batch_norm folded into float weights too
  bool per_channel_bias = false;
  bool copied_bias = false;               // the bias was shared, so the conv got its own
  std::size_t clamped_bias_elements = 0;  // saturated at the int32 range
  bool output_quantized = true;           // a quantize/dequantize right after the conv (else no range risk)
  numerics::OutputRangeRisk risk;         // range and relative shift only when output_quantized
  // "conv2d", "conv_transpose1d", ...: the op without namespace and overload.
  std::string kind() const;
  bool flagged = false;  // risk above the threshold (never when widened)
  // output_range = widen: the conv output's new quantization (risk keeps the
  // calibrated range).
  std::optional<numerics::AffineRange> widened_output;
  // What bias preparation did to the conv on the way ("added a zero int32
  // bias"), or empty.
  std::string prepared_bias;
  // The pass whose pattern folded it ("FoldConvBatchNormChain").
  std::string folded_by;
  // Per-tensor weights re-quantized: max |w' - dequantized w'| / max |w'|,
  // and the same within the worst channel, over its own max |w'_c|.
  struct WeightError {
    double overall = 0;
    double worst_channel = 0;
    std::size_t channel = 0;
  };
  // Set when the chain's div and the BN scale did not cancel (factor r): the
  // scale chain's eps differed from batch_norm's, or the batch_norm read
  // dequantized copies of the parameters the divisor was built from.
  struct EpsMismatch {
    double chain_eps = 0;
    double batch_norm_eps = 0;
    float factor_min = 1;                 // min_c r_c
    float factor_max = 1;                 // max_c r_c
    bool in_weight_scales = false;        // r folded into per-channel scales; else ignored (within tolerance)
    bool dequantized_parameters = false;  // r from the dequantized parameters (else from the eps alone)
    std::optional<WeightError> requantized_weights;  // per-tensor weights re-quantized with r: what it cost
  };
  std::optional<EpsMismatch> eps_mismatch;
  // A batch_norm folded behind a quantized layer into its weight scales
  // (FoldBatchNormIntoWeightScales): where the folded output's quantization
  // came from ("trained", "trained after relu", "calibrated", "estimated"),
  // the layer's old output quantization and the one it has now.
  struct Requantized {
    std::string source;
    numerics::AffineRange before;
    numerics::AffineRange after;
    std::size_t negated_channels = 0;
    std::optional<WeightError> weight_error;  // per-tensor weights re-quantized
    // What the fold saw past between the layer's output quantization and
    // the batch_norm (layer_output.h), a line each; both are replaced.
    std::vector<std::string> looked_through;
  };
  std::optional<Requantized> requantized;
};

// A batch_norm left in the graph, and why.
struct SkippedBatchNorm {
  std::string batch_norm;
  std::string module_path;
  Refusal refusal;
  std::string reason() const { return refusal.message(); }
  std::string_view code() const { return refusal.info().id; }
  bool qatChain() const { return refusal.qat_chain; }
};

// Which convs got an int32 bias, by which rule (see passes/bias_preparation.h).
struct BiasPreparationReport {
  std::string policy;     // "all" or "folded"
  std::string requested;  // "auto", "all" or "folded"
  std::string reason;
};

struct FoldReport {
  BiasPreparationReport bias_preparation;
  std::vector<PreparedBias> prepared_biases;
  std::vector<FoldedConv> folded;
  std::vector<SkippedBatchNorm> skipped;
  double risk_threshold = 0;
  std::size_t removed_nodes = 0;
  std::size_t removed_constants = 0;
  // Whether any pass changed the program; if not, the output is the input.
  bool changed = false;
  // Whether the program holds quantize or dequantize ops at all, and how
  // many batch_norms it had before any pass ran.
  bool quantized_program = false;
  std::size_t batch_norms = 0;
  // Likely mistakes the program shows (exported in training mode, never
  // quantized), each a line that names the fix; printed without --explain.
  std::vector<std::string> warnings;

  // The outcome of one batch_norm under one pattern (the pass driver's
  // calls). A fold is final: it takes the batch_norm off the skipped list.
  void recordFolded(FoldedConv chain);
  // A refusal: each batch_norm keeps one, that of the pattern that matched
  // furthest (Refusal::stage), the earlier pattern's on a tie.
  void refuse(const std::string& batch_norm, const std::string& module_path, Refusal refusal);
  // What strict mode fails on: every batch_norm left in a quantized
  // program, and every one in training mode.
  std::vector<const SkippedBatchNorm*> strictFailures() const;
  // Whether strict mode fails: a strict failure, or batch_norms in a
  // program that was never quantized (a mistake even where all fold).
  bool strictFailed() const { return !strictFailures().empty() || (batch_norms > 0 && !quantized_program); }
  // Folded chains and refused ones that looked like QAT chains.
  std::size_t chainsFound() const;
  std::size_t clampedTotal() const;
  std::size_t flaggedCount() const;
};

// Fills in which conv and batch_norm a folded chain joined, and its channels.
void describeFold(FoldedConv& report, const graph::Node& conv, const graph::Node& batch_norm, std::int64_t channels);

}  // namespace qatfold::passes
