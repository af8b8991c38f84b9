// The fold pipeline: every pass of passes/registry.h, in order, then lint.
#pragma once

#include "qatfold/graph/graph.h"
#include "qatfold/passes/fold_qat_conv_bn.h"
#include "qatfold/passes/fold_report.h"

namespace qatfold::passes {

struct FoldOptions {
  double risk_threshold = kDefaultRiskThreshold;  // see FoldQatConvBatchNorm::Options
  double eps_tolerance = kDefaultEpsTolerance;    // see FoldQatConvBatchNorm::Options
};

// Runs the fold pipeline on `graph` and reports what it did.
FoldReport runFoldPipeline(graph::Graph& graph, const FoldOptions& options);

}  // namespace qatfold::passes
