// Writes a graph back into a PT2 archive.
//
// The output is the input archive with: the model JSON emitted from the
// graph, the payload configs rebuilt from the graph's weights and constants,
// new payload records for new storages, and payload records nothing refers
// to any more dropped. Every other record is copied verbatim.
#pragma once

#include <string>

#include "qatfold/archive/archive.h"
#include "qatfold/graph/graph.h"

namespace qatfold {

// The record changes that turn `archive` into the archive of `graph`.
ArchiveEdit planProgramEdit(const Archive& archive, const graph::Graph& graph);

// Writes the archive of `graph` to `sink`.
void writeProgram(const Archive& archive, const graph::Graph& graph, ByteSink& sink);

// Writes the archive of `graph` to `path` as openOutputFile opens it (a
// regular file atomically: a temporary file in the same folder, renamed into
// place once complete). `path` may be the input.
void writeProgramFile(const Archive& archive, const graph::Graph& graph, const std::string& path);

// The output of a fold: the graph's archive, or, when `changed` is false (no
// pass touched the graph), the input's own bytes, so a program nothing folds
// comes out byte for byte as it went in.
void writeFoldResult(const Archive& archive, const graph::Graph& graph, bool changed, ByteSink& sink);
void writeFoldResultFile(const Archive& archive, const graph::Graph& graph, bool changed, const std::string& path);

}  // namespace qatfold
