// The one driver of the batch_norm patterns. A pattern offers
//
//     std::variant<Match, Refusal> match(graph::Node& batch_norm) const;
//     void rewrite(graph::Graph& graph, const Match& match) const;
//
// and the driver runs it over every batch_norm in program order: a Match is
// rewritten and recorded as folded, a Refusal is recorded against the
// batch_norm. The report keeps one outcome per batch_norm (FoldReport::
// refuse, recordFolded); no pattern touches the report itself.
#pragma once

#include <string_view>
#include <variant>

#include "qatfold/graph/graph.h"
#include "qatfold/passes/fold_report.h"
#include "qatfold/passes/patterns.h"
#include "qatfold/passes/refusal.h"

namespace qatfold::passes {

// `pass` names the pattern in the report (FoldedConv::folded_by).
template <class Pattern>
void foldBatchNorms(graph::Graph& graph, std::string_view pass, const Pattern& pattern, FoldReport& report) {
  for (graph::Node* node : graph.nodes()) {
    if (!isBatchNorm(*node)) continue;
    auto result = pattern.match(*node);
    if (auto* refusal = std::get_if<Refusal>(&result)) {
      report.refuse(node->name(), modulePath(*node), std::move(*refusal));
      continue;
    }
    const auto& match = std::get<typename Pattern::Match>(result);
    pattern.rewrite(graph, match);
    FoldedConv folded = match.report;
    folded.folded_by = pass;
    report.recordFolded(std::move(folded));
  }
}

}  // namespace qatfold::passes
