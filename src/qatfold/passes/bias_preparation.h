// Which convolutions get an int32 bias before folding.
//
// A fold writes the BatchNorm shift into an int32 bias, so a conv whose
// chain folds needs one. Other convs are a backend's business:
//
//   - Cadence's quantizer encodes every conv bias as int32, and its fusion
//     expects one on every quantized conv. ExecuTorch's FuseQATConvBN gives
//     one to every conv with dequantized input and weight; in such programs
//     we do the same (kAllConvs), which keeps parity with it.
//   - XNNPACK (and most backends) want float biases: they quantize them
//     themselves, and a dequantize_per_channel int32 bias makes XNNPACK's
//     partitioner leave the conv out of the delegate. There only convs whose
//     chain folds get one (kFoldedConvs), so a program where nothing folds
//     comes out unchanged.
//
// The rule kAuto applies: a program "encodes conv biases as int32" when
//   - at least one convolution or linear reads its bias through a dequantize
//     (per tensor or per channel) of an int32 tensor, or
//   - a QAT chain of a quantized conv survived (conv -> q -> dq -> div ->
//     [add] -> batch_norm): torchao's own fold removes every chain whose
//     pattern matches, and the match fails where the quantizer annotates the
//     conv's output and gives its bias an int32 spec. A program of bias-less
//     convs shows the spec only this way (Cadence's FusedConvRelu quantizer
//     leaves its conv+relu blocks folded by torchao with float biases and its
//     other convs in chains; ExecuTorch's pass gives them all int32 biases).
// A program with neither (all float, or every chain folded by torchao, as
// XNNPACK's) gets kFoldedConvs: nothing in it says the backend wants int32
// biases, and a folded conv gets its own either way. Under kAuto, where no
// batch_norm folds, no prepared bias is kept (passes/pipeline.cc): the
// program comes out unchanged.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "qatfold/graph/graph.h"

namespace qatfold::passes {

enum class BiasPreparation {
  kAuto,         // decide from the program (see above)
  kAllConvs,     // every conv with dequantized input and weight (ExecuTorch's pass)
  kFoldedConvs,  // only convs whose chain folds
};

// The policies' names, in enum order (the option's values, fold_options.h).
inline constexpr std::string_view kBiasPreparationNames[] = {"auto", "all", "folded"};

// "auto", "all", "folded".
std::string_view biasPreparationName(BiasPreparation policy);

// The policy a run applies and why.
struct BiasPreparationDecision {
  BiasPreparation requested = BiasPreparation::kAuto;
  BiasPreparation applied = BiasPreparation::kFoldedConvs;  // never kAuto
  std::string reason;
};

// Resolves `requested` for `graph` (kAuto by the rule above).
BiasPreparationDecision decideBiasPreparation(const graph::Graph& graph, BiasPreparation requested);

// The first convolution or linear whose bias is dequantized from int32, or null.
const graph::Node* firstInt32BiasReader(const graph::Graph& graph);
// The conv of the first surviving QAT chain whose conv reads dequantized
// input and weight, or null.
const graph::Node* firstQuantizedChainConv(const graph::Graph& graph);

}  // namespace qatfold::passes
