// What the pipeline says about a program before any pass runs, and what
// --strict fails on: training mode (nothing changes), no quantization at all
// (a warning), batch_norms left in a quantized program; and dynamic shapes,
// which fold like static ones wherever the channel dimension is static.
#include <gtest/gtest.h>

#include "qatfold/passes/patterns.h"
#include "qatfold/passes/pipeline.h"
#include "qatfold/report/fold_report.h"
#include "qatfold/writer/pt2_writer.h"
#include "test_support.h"
#include "text_graphs.h"

namespace qatfold {
namespace {

using testing::edited;
using testing::foldText;
using testing::kFloatChain;
using testing::kQatChain;

bool hasWarning(const passes::FoldReport& report, const std::string& part) {
  for (const std::string& warning : report.warnings) {
    if (warning.find(part) != std::string::npos) return true;
  }
  return false;
}

TEST(ProgramChecks, TrainingModeChangesNothingAndSaysWhy) {
  auto f = foldText(edited(kQatChain, {{"training=False", "training=True"}}));
  EXPECT_FALSE(f.report.changed);
  EXPECT_EQ(f.after(), f.before);
  EXPECT_TRUE(f.report.prepared_biases.empty());  // no bias preparation either
  ASSERT_EQ(f.report.warnings.size(), 1u);
  EXPECT_TRUE(hasWarning(f.report, "1 batch_norm(s) run in training mode (bn)"));
  EXPECT_TRUE(hasWarning(f.report, "move_exported_model_to_eval"));
  ASSERT_EQ(f.report.strictFailures().size(), 1u);
  EXPECT_TRUE(f.report.strictFailed());
  // Shown without --explain.
  EXPECT_NE(qatfold::report::foldReportText(f.report, false).find("warning: 1 batch_norm(s) run in training mode"),
            std::string::npos);
  EXPECT_EQ(qatfold::report::foldReportJson(f.report)["strict_failures"][0]["code"], "training-mode");
}

TEST(ProgramChecks, AnUnquantizedProgramFoldsWithAWarningThatStrictFailsOn) {
  auto f = foldText(kFloatChain);
  EXPECT_EQ(f.report.folded.size(), 1u);  // into a float bias
  EXPECT_FALSE(f.report.quantized_program);
  EXPECT_TRUE(hasWarning(f.report, "no quantize or dequantize op: the program is not quantized"));
  EXPECT_TRUE(f.report.strictFailures().empty());
  EXPECT_TRUE(f.report.strictFailed());
}

TEST(ProgramChecks, AQuantizedProgramThatFoldsCompletelyPassesStrict) {
  auto f = foldText(kQatChain);
  EXPECT_EQ(f.report.folded.size(), 1u);
  EXPECT_TRUE(f.report.quantized_program);
  EXPECT_TRUE(f.report.warnings.empty());
  EXPECT_FALSE(f.report.strictFailed());
  EXPECT_EQ(qatfold::report::foldReportJson(f.report)["strict_failed"], false);
}

TEST(ProgramChecks, ABatchNormLeftInAQuantizedProgramFailsStrict) {
  // A second batch_norm after the chain's: no conv before it to fold into.
  auto f = foldText(edited(kQatChain, {{"return %bn",
                                        "%bn2 = aten.batch_norm.default(input=%bn, weight=%bn_w, bias=%bn_b, "
                                        "running_mean=%mean, running_var=%var, training=False, momentum=0.1, "
                                        "eps=1e-05, cudnn_enabled=False): float32[1, 2, 4, 4]\nreturn %bn2"}}));
  EXPECT_EQ(f.report.folded.size(), 1u);
  ASSERT_EQ(f.report.strictFailures().size(), 1u);
  EXPECT_EQ(f.report.strictFailures()[0]->batch_norm, "bn2");
  EXPECT_TRUE(f.report.warnings.empty());
}

TEST(DynamicShapes, SymbolicSizesAreKeptPerDimension) {
  LoadedProgram loaded = testing::loadFixture("qat_cadence_dynamic.pt2");
  const program::TensorMeta* x = loaded.graph->getValue("x")->meta();
  ASSERT_NE(x, nullptr);
  EXPECT_TRUE(x->symbolic);
  ASSERT_EQ(x->rank(), 3u);
  EXPECT_EQ(x->size(0), std::nullopt);
  EXPECT_EQ(x->size(1), 8);
  EXPECT_EQ(x->size(2), std::nullopt);
  EXPECT_FALSE(x->size_symbols[0].empty());
  EXPECT_TRUE(x->size_symbols[1].empty());
  EXPECT_EQ(x->shapeString(), "[" + x->size_symbols[0] + ", 8, " + x->size_symbols[2] + "]");
}

TEST(DynamicShapes, EveryChainOfADynamicProgramFolds) {
  LoadedProgram loaded = testing::loadFixture("qat_cadence_dynamic.pt2");
  passes::FoldReport report = passes::runFoldPipeline(*loaded.graph, {});
  EXPECT_EQ(report.folded.size(), 3u);
  EXPECT_TRUE(report.skipped.empty());
  EXPECT_EQ(report.prepared_biases.size(), 1u);  // the bias-less first conv
  for (const auto* node : loaded.graph->nodes()) EXPECT_FALSE(passes::isBatchNorm(*node)) << node->name();
  // The folded program writes and reads back with its symbolic sizes.
  StringSink sink;
  writeProgram(*loaded.archive, *loaded.graph, sink);
  LoadedProgram reread = LoadedProgram::fromArchive(Archive::fromBytes(sink.bytes()));
  EXPECT_EQ(reread.graph->getValue("x")->meta()->shapeString(), loaded.graph->getValue("x")->meta()->shapeString());
}

TEST(DynamicShapes, TextGraphsNameSymbolicSizes) {
  const std::string text =
      "input %x: float32[s0, 3, n]\n%y = aten.relu.default(self=%x): float32[s0, 3, n]\nreturn %y\n";
  LoadedProgram loaded = LoadedProgram::fromText(text);
  EXPECT_EQ(graph::printGraph(*loaded.graph), text);
  EXPECT_EQ(loaded.graph->getValue("y")->meta()->size(1), 3);
}

}  // namespace
}  // namespace qatfold
