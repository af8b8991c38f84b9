// The whole job in one call: archive bytes in, folded archive bytes and the
// report out. The Python layer and the fuzz-style tests use it; the CLI does
// the same with files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qatfold/graph/edit_log.h"

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

// ---- the in-memory front door ------------------------------------------------
//
// A program a front end holds in memory (an ExportedProgram): its graph and
// signature as the schema's model JSON, without metadata (python/qatfold/
// _fx.py writes it), and its tensors viewed in place, never copied.

// One parameter, buffer or tensor constant: where it lives, its view, and
// the bytes of its storage, owned by the front end for the whole call.
struct BorrowedPayload {
  std::string fqn;
  bool constant = false;  // a lifted tensor constant (else in the state_dict)
  bool is_param = false;
  program::TensorMeta meta;
  const char* data = nullptr;
  std::uint64_t size = 0;
};

struct FoldedGraph {
  std::vector<graph::Edit> edits;  // what turns the program into the folded one
  passes::FoldReport report;
};

// Runs the fold pipeline on that program and returns the edits it made, in
// order, for the front end to replay on its own copy. New tensors in the
// edits own their bytes; borrowed ones are only read during the call.
FoldedGraph foldGraph(std::string model_json, const std::vector<BorrowedPayload>& payloads,
                      const passes::FoldOptions& options);

}  // namespace qatfold
