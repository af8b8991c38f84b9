#include "qatfold/fold.h"

#include "qatfold/report/inspect.h"
#include "qatfold/loaded_program.h"
#include "qatfold/writer/pt2_writer.h"

namespace qatfold {

FoldedArchive foldArchiveBytes(std::string bytes, const passes::FoldOptions& options, bool dry_run) {
  LoadedProgram loaded = LoadedProgram::fromArchive(Archive::fromBytes(std::move(bytes)));
  FoldedArchive result;
  result.report = passes::runFoldPipeline(*loaded.graph, options);
  if (!dry_run) {
    StringSink sink;
    writeFoldResult(*loaded.archive, *loaded.graph, result.report.changed, sink);
    result.archive = std::move(sink.bytes());
  }
  return result;
}

Json inspectArchiveBytes(std::string bytes) {
  LoadedProgram loaded = LoadedProgram::fromArchive(Archive::fromBytes(std::move(bytes)));
  return report::inspectReport(*loaded.archive, *loaded.graph);
}

}  // namespace qatfold
