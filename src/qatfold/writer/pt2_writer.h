// Writes a graph into a PT2 archive.
//
// A program read from an archive is written as that archive with: the model JSON emitted from the
// graph, the payload configs rebuilt from the graph's weights and constants,
// new payload records for new storages, and payload records nothing refers
// to any more dropped. Every other record is copied verbatim. A program made
// in memory (a text graph's) is written the same way onto the records
// torch.export.save writes besides a program (pt2Layout): this file is the
// one place that knows the archive's layout.
#pragma once

#include <optional>
#include <string>
#include <string_view>

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

// An archive (root folder `name`) of the records torch.export.save writes
// besides a program: its format and version records, the byte order, and
// an empty sample-inputs record (no example inputs).
std::unique_ptr<Archive> pt2Layout(const std::string& name);

// Writes the archive (root folder `name`) of a program made in memory.
void writeNewProgram(const graph::Graph& graph, const std::string& name, ByteSink& sink);

// The bytes of the PT2 archive of the program a text graph describes
// (graph::programFromText says what it throws).
std::string archiveFromText(std::string_view text, const std::string& name = "text_graph",
                            const std::optional<std::string>& fill_elided = std::nullopt);

// The output of a fold: the graph's archive, or, when `changed` is false (no
// pass touched the graph), the input's own bytes, so a program nothing folds
// comes out byte for byte as it went in.
void writeFoldResult(const Archive& archive, const graph::Graph& graph, bool changed, ByteSink& sink);
void writeFoldResultFile(const Archive& archive, const graph::Graph& graph, bool changed, const std::string& path);

}  // namespace qatfold
