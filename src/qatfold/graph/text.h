// The graph as text, for tests and for people: a printer (text_printer.cc),
// and a parser (text_parser.cc) that builds the program the text describes;
// writer/pt2_writer.h writes it as a PT2 archive torch.export.load opens (so
// a test runs the same reader, import and passes a user's archive goes
// through).
//
//     # comments run to the end of a line
//     input %x: float32[1, 3, 8, 8]
//     parameter %w = "conv.weight": int8[4, 3, 3, 3] = fill(1)
//     buffer %mean = "bn.running_mean": float32[4] = [0.5, -1, 2, 0]
//     buffer %offset = "offset" nonpersistent: float32[4] = fill(0)
//     constant %b = "_frozen_param0": int32[4] = fill(0)
//     %dq = quantized_decomposed.dequantize_per_tensor.default(input=%x,
//           scale=0.02, zero_point=0, quant_min=-128, quant_max=127, dtype=int8): float32[1, 3, 8, 8]
//     %y, %m, %v = aten._native_batch_norm_legit_no_training.default(...): float32[...], float32[0], float32[0] @bn
//     return %y
//
// `verifier TRAINING` names the program's dialect, `symbol s0 = [2, None]`
// the range of a symbolic size (float32[s0, 3]); keyword-only arguments
// follow a `*` as in Python. A node is one statement; it may span lines until its parentheses close.
// Targets drop the "torch.ops." prefix. The node's name is its first
// output's unless `@name` follows. Arguments are named, and their kind
// follows from how they are written: %v (a tensor), [%a, %b] (tensors),
// ?[%a, None] (optional tensors), 3 (int), 3.0 / 1e-05 (float), True,
// None, "text", [1, 2] (ints), [1.0, 2.0] (floats), [True] (bools), int8
// (a dtype); anything else as the schema's JSON: json{"as_device": ...}.
// A constant's data is a list or fill(v); the printer writes the data of
// constants with at most kPrintedElements elements and elides the rest, which
// then read back only where the caller says what to fill them with.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "qatfold/graph/graph.h"
#include "qatfold/program/program.h"

namespace qatfold::graph {

inline constexpr std::size_t kPrintedElements = 32;

// `graph` as text, in program order, with the data of constants of at most
// `max_elements` elements (pass SIZE_MAX for a text that reads back whole).
std::string printGraph(const Graph& graph, std::size_t max_elements = kPrintedElements);

// The program `text` describes, its payloads held in memory. Throws
// Error("line N: ...") on malformed text, and on a constant written without
// data unless `fill_elided` gives the value (a number, as fill(v) takes it)
// its elements take. The text keeps no metadata: the program's call
// signature is its user inputs, positional, and its outputs (one, or a tuple).
std::unique_ptr<Program> programFromText(std::string_view text,
                                         const std::optional<std::string>& fill_elided = std::nullopt);

}  // namespace qatfold::graph
