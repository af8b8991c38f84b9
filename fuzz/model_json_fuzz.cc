// Fuzz target: model JSON -> typed program -> graph -> back to JSON. The input
// replaces models/model.json of a real Cadence QAT archive, so the payloads
// it names may or may not exist, as in a hand-edited or truncated file.
#include "fuzz/fuzz_support.h"
#include "qatfold/error.h"
#include "qatfold/graph/graph.h"
#include "qatfold/passes/pipeline.h"
#include "qatfold/program/program.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace qatfold;
  static const std::unique_ptr<Archive> base = Archive::fromBytes(fuzz::readFixture("qat_cadence_cnn.pt2"));
  try {
    auto archive = Archive::fromBytes(fuzz::withRecord(*base, modelJsonPath("model"), fuzz::asView(data, size)));
    auto program = Program::load(*archive);
    graph::Graph graph(*program);
    (void)dumpJson(graph.toExportedProgram().toJson());
    passes::runFoldPipeline(graph, {});
    (void)dumpJson(graph.toExportedProgram().toJson());
  } catch (const Error&) {
  }
  return 0;
}
