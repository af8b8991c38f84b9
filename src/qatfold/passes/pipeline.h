// The fold pipeline: every pass of passes/registry.h, in order, then lint.
#pragma once

#include "qatfold/graph/graph.h"
#include "qatfold/passes/bias_preparation.h"
#include "qatfold/passes/fold_qat_conv_bn.h"
#include "qatfold/passes/fold_report.h"

namespace qatfold::passes {

struct FoldOptions {
  double risk_threshold = kDefaultRiskThreshold;  // see FoldQatConvBatchNorm::Options
  double eps_tolerance = kDefaultEpsTolerance;    // see FoldQatConvBatchNorm::Options
  BiasPreparation bias_preparation = BiasPreparation::kAuto;  // see bias_preparation.h
};

// Runs the fold pipeline on `graph` and reports what it did. A graph no pass
// changes is left exactly as it was (no dead-code or constant clean-up), and
// the report says so (FoldReport::changed).
FoldReport runFoldPipeline(graph::Graph& graph, const FoldOptions& options);

}  // namespace qatfold::passes
