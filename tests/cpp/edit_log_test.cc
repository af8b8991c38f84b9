// The edit log (graph/edit_log.h) records what the passes did as primitive
// edits, for a front end to replay: checked here by replaying the log of a
// fold on a second copy of the same program through the graph's own
// mutation API and comparing the two graphs as text.
#include <gtest/gtest.h>

#include "qatfold/graph/edit_log.h"
#include "qatfold/passes/pipeline.h"
#include "text_graphs.h"

namespace qatfold::graph {
namespace {

// Replays `edits` on `graph`, as the FX front door does on an FX graph.
void replay(Graph& graph, const std::vector<Edit>& edits) {
  for (const Edit& edit : edits) {
    switch (edit.kind) {
      case Edit::Kind::kReplaceAllUses:
        graph.replaceAllUsesWith(graph.getValue(edit.value), graph.getValue(edit.other));
        break;
      case Edit::Kind::kSetInput:
        graph.setInput(graph.getValue(edit.node)->producer(), edit.operand, graph.getValue(edit.value), "weight");
        break;
      case Edit::Kind::kSetArgument:
        graph.setArgument(graph.getValue(edit.node)->producer(), edit.operand, *edit.argument);
        break;
      case Edit::Kind::kInsertNode: {
        NodeSpec spec;
        spec.target = edit.target;
        spec.name_hint = edit.value;
        spec.output_meta = *edit.meta;
        for (const Edit::Operand& operand : edit.operands) {
          if (operand.argument.is("as_tensor")) {
            spec.inputs.push_back({operand.name, graph.getValue(*operand.argument.tensorReferences()[0])});
          } else {
            spec.inputs.push_back({operand.name, operand.argument});
          }
        }
        Node* anchor = edit.anchor.empty() ? nullptr : graph.getValue(edit.anchor)->producer();
        graph.insertNodeBefore(anchor, spec);
        break;
      }
      case Edit::Kind::kEraseNode:
        for (Node* node : graph.nodes()) {
          if (node->name() == edit.node) graph.eraseNode(node);
        }
        break;
      case Edit::Kind::kAddConstant: {
        Value* added = graph.addConstantTensor(edit.input_kind, edit.fqn, edit.value, *edit.meta, edit.storage);
        EXPECT_EQ(added->name(), edit.value);
        break;
      }
      case Edit::Kind::kReplaceTensorData:
        graph.replaceTensorData(graph.getValue(edit.value), *edit.meta, edit.storage);
        break;
      case Edit::Kind::kRemoveConstant: break;  // removeUnusedConstants below drops the same ones
    }
  }
  graph.removeUnusedConstants();
}

TEST(EditLog, ReplayingTheLogGivesTheFoldedGraph) {
  passes::FoldOptions widen;
  widen.output_range = passes::OutputRange::kWiden;
  const std::vector<std::pair<std::string, passes::FoldOptions>> programs = {
      {testing::kQatChain, {}},
      {testing::kFloatChain, {}},
      {testing::kPlainBatchNorm, {}},
      // No bias: bias preparation adds a constant and a dequantize, and sets the conv's input.
      {testing::edited(testing::kQatChain, {{"bias=%b_dq)", "bias=None)"}}), {}},
      // A shared bias: copied, with its own dequantize.
      {testing::edited(testing::kQatChain, {{"return %bn", "return %bn, %b_q"}}), {}},
      // A widened output range: the quantize and dequantize get a new scale and zero point.
      {testing::kQatChain, widen}};
  for (const auto& [text, options] : programs) {
    LoadedProgram folded = LoadedProgram::fromText(text);
    EditLog log;
    folded.graph->setListener(&log);
    passes::FoldReport report = passes::runFoldPipeline(*folded.graph, options);
    folded.graph->setListener(nullptr);
    ASSERT_TRUE(report.changed) << text;
    ASSERT_FALSE(log.edits().empty());

    LoadedProgram replayed = LoadedProgram::fromText(text);
    replay(*replayed.graph, log.edits());
    replayed.graph->lint();
    EXPECT_EQ(printGraph(*replayed.graph), printGraph(*folded.graph)) << text;
  }
}

TEST(EditLog, ANoOpFoldLogsNothing) {
  LoadedProgram loaded =
      LoadedProgram::fromText(testing::edited(testing::kQatChain, {{"training=False", "training=True"}}));
  EditLog log;
  loaded.graph->setListener(&log);
  passes::FoldReport report = passes::runFoldPipeline(*loaded.graph, {});
  EXPECT_FALSE(report.changed);
  EXPECT_TRUE(log.edits().empty());
}

}  // namespace
}  // namespace qatfold::graph
