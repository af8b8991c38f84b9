// The whole job in one call: archive bytes in, folded archive bytes and the
// report out. The Python layer and the fuzz-style tests use it; the CLI does
// the same with files.
#pragma once

#include <string>

#include "qatfold/passes/fold_report.h"
#include "qatfold/passes/pipeline.h"

namespace qatfold {

struct FoldedArchive {
  std::string archive;  // empty for a dry run
  passes::FoldReport report;
};

// Reads a PT2 archive from memory, runs the fold pipeline, and writes the
// result to memory unless `dry_run`. Throws Error on malformed input.
FoldedArchive foldArchiveBytes(std::string bytes, const passes::FoldOptions& options, bool dry_run = false);

// The inspect report of an archive held in memory, as JSON.
Json inspectArchiveBytes(std::string bytes);

}  // namespace qatfold
