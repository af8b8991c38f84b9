// The passes qatfold runs, in order, declared in one table: name, summary,
// the options (fold_options.h) that steer each, and how to run it. The
// pipeline runs this table, and `qatfold passes` and the README print it.
#pragma once

#include <span>
#include <string_view>

#include "qatfold/graph/graph.h"
#include "qatfold/passes/bias_preparation.h"
#include "qatfold/passes/fold_options.h"
#include "qatfold/passes/fold_report.h"

namespace qatfold::passes {

// What a pass sees of the run: the options, and the bias policy the
// pipeline decided before any pass ran (decideBiasPreparation).
struct PassContext {
  const FoldOptions& options;
  BiasPreparation bias_policy;
};

struct PassInfo {
  std::string_view name;
  std::string_view summary;
  // Python names of the options (kFoldOptions) that steer it.
  std::span<const std::string_view> options;
  void (*run)(graph::Graph& graph, const PassContext& context, FoldReport& report);
};

// The fold pipeline, in the order it runs.
std::span<const PassInfo> foldPipeline();

// The table as `qatfold passes` prints it (and the README shows it).
std::string describeFoldPipeline();

}  // namespace qatfold::passes
