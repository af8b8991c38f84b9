// An archive with its program and graph, owned together: the graph points
// into the program, and the program's storages read from the archive.
#pragma once

#include <memory>
#include <string>

#include "qatfold/archive/archive.h"
#include "qatfold/graph/graph.h"
#include "qatfold/graph/text.h"
#include "qatfold/program/program.h"
#include "qatfold/writer/pt2_writer.h"

namespace qatfold {

struct LoadedProgram {
  std::unique_ptr<Archive> archive;
  std::unique_ptr<Program> program;
  std::unique_ptr<graph::Graph> graph;

  // Parses the program of `archive` and builds its graph; throws Error.
  static LoadedProgram fromArchive(std::unique_ptr<Archive> archive) {
    LoadedProgram loaded;
    loaded.archive = std::move(archive);
    loaded.program = Program::load(*loaded.archive);
    loaded.graph = std::make_unique<graph::Graph>(*loaded.program);
    return loaded;
  }
  static LoadedProgram open(const std::string& path, const ReadLimits& limits = {}) {
    return fromArchive(Archive::open(path, limits));
  }
  // The program a text graph describes (graph/text.h).
  static LoadedProgram fromText(std::string_view text) {
    return fromArchive(Archive::fromBytes(archiveFromText(text), "<text graph>"));
  }
};

}  // namespace qatfold
