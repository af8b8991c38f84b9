// The fold pipeline: the passes of passes/registry.h, in order, then lint.
#pragma once

#include "qatfold/graph/graph.h"
#include "qatfold/passes/fold_options.h"
#include "qatfold/passes/fold_report.h"

namespace qatfold::passes {

// Runs the fold pipeline on `graph` and reports what it did. A graph no pass
// changes is left exactly as it was (no dead-code or constant clean-up), and
// the report says so (FoldReport::changed).
FoldReport runFoldPipeline(graph::Graph& graph, const FoldOptions& options);

}  // namespace qatfold::passes
