// The whole job in one call: archive bytes in, folded archive bytes and the
// report out. The Python layer and the fuzz-style tests use it; the CLI does
// the same with files.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qatfold/graph/edit_log.h"
#include "qatfold/graph/graph.h"
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
// signature as the schema's structs, built from the front end's own objects
// (python/fx_describe.cc reads an FX graph), and its tensors viewed in
// place, never copied.

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

// The program and its graph, over tensors the front end keeps alive (and
// does not change) for as long as this lives.
class MemoryProgram {
 public:
  // Throws Error on a program the graph cannot be built from, or a tensor
  // view that does not fit its storage.
  MemoryProgram(program::ExportedProgram exported, const std::vector<BorrowedPayload>& payloads);
  const graph::Graph& graph() const { return *graph_; }

  // Runs the fold pipeline and returns the edits it made, in order, for the
  // front end to replay on its own copy. New tensors in the edits own their
  // bytes; borrowed ones are only read.
  FoldedGraph fold(const passes::FoldOptions& options);

 private:
  std::unique_ptr<Program> program_;
  std::unique_ptr<graph::Graph> graph_;
};

}  // namespace qatfold
