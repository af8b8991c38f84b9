#include "qatfold/fold.h"

#include "qatfold/loaded_program.h"
#include "qatfold/report/inspect.h"
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

MemoryProgram::MemoryProgram(program::ExportedProgram exported, const std::vector<BorrowedPayload>& payloads) {
  std::vector<std::shared_ptr<Payload>> weights, constants;
  for (const BorrowedPayload& borrowed : payloads) {
    auto payload = std::make_shared<Payload>();
    payload->section = borrowed.constant ? PayloadSection::kConstants : PayloadSection::kWeights;
    payload->fqn = borrowed.fqn;
    payload->meta.is_param = borrowed.is_param;
    payload->meta.tensor_meta = borrowed.meta;
    payload->storage = Storage::borrowed(borrowed.data, borrowed.size);
    try {
      (void)payload->view();  // the view must fit its storage
    } catch (const Error& e) {
      throw e.within("tensor '" + borrowed.fqn + "': ");
    }
    (borrowed.constant ? constants : weights).push_back(std::move(payload));
  }
  program_ = Program::fromMemory(std::move(exported), std::move(weights), std::move(constants));
  graph_ = std::make_unique<graph::Graph>(*program_);
}

FoldedGraph MemoryProgram::fold(const passes::FoldOptions& options) {
  graph::EditLog log;
  graph_->setListener(&log);
  FoldedGraph result;
  try {
    result.report = passes::runFoldPipeline(*graph_, options);
  } catch (...) {
    graph_->setListener(nullptr);
    throw;
  }
  graph_->setListener(nullptr);
  result.edits = log.takeEdits();
  // A run that kept nothing (report.changed false, even where bias
  // preparation edited the graph) leaves the front end's program as it is.
  if (!result.report.changed) result.edits.clear();
  return result;
}

Json inspectArchiveBytes(std::string bytes) {
  LoadedProgram loaded = LoadedProgram::fromArchive(Archive::fromBytes(std::move(bytes)));
  return report::inspectReport(*loaded.archive, *loaded.graph);
}

}  // namespace qatfold
