#include "qatfold/fold.h"

#include "qatfold/archive/archive.h"
#include "qatfold/cli/inspect.h"
#include "qatfold/graph/graph.h"
#include "qatfold/program/program.h"
#include "qatfold/writer/pt2_writer.h"

namespace qatfold {

FoldedArchive foldArchiveBytes(std::string bytes, const passes::FoldOptions& options, bool dry_run) {
  auto archive = Archive::fromBytes(std::move(bytes));
  auto program = Program::load(*archive);
  graph::Graph graph(*program);
  FoldedArchive result;
  result.report = passes::runFoldPipeline(graph, options);
  if (!dry_run) {
    StringSink sink;
    writeProgram(*archive, graph, sink);
    result.archive = std::move(sink.bytes());
  }
  return result;
}

Json inspectArchiveBytes(std::string bytes) {
  auto archive = Archive::fromBytes(std::move(bytes));
  auto program = Program::load(*archive);
  graph::Graph graph(*program);
  return cli::inspectReport(*archive, graph);
}

}  // namespace qatfold
