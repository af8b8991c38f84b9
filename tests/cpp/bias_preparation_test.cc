// Bias preparation only where it is needed: every quantized conv in programs
// that encode conv biases as int32 (Cadence, ExecuTorch's pass), only folded
// convs elsewhere (XNNPACK wants float biases), and a program nothing folds
// comes out byte for byte.
#include <gtest/gtest.h>

#include "qatfold/fold.h"
#include "qatfold/passes/bias_preparation.h"
#include "qatfold/passes/pipeline.h"
#include "qatfold/report/fold_report.h"
#include "test_support.h"

namespace qatfold::passes {
namespace {

using testing::fixturePath;
using testing::loadFixture;
using testing::readFile;

FoldOptions withPolicy(BiasPreparation policy) {
  FoldOptions options;
  options.bias_preparation = policy;
  return options;
}

TEST(FoldOptions, ChoicesRoundTripThroughTheirNames) {
  // Every choice option (bias_preparation, output_range) sets the enum value of its name and reads it back.
  for (const FoldOptionInfo& info : kFoldOptions) {
    if (info.choices.empty()) continue;
    for (std::size_t i = 0; i < info.choices.size(); ++i) {
      FoldOptions options;
      EXPECT_FALSE(setFoldOption(options, info, info.choices[i]).has_value());
      EXPECT_EQ(info.get_choice(options), i);
      EXPECT_EQ(foldOptionValue(options, info), info.choices[i]);
    }
    FoldOptions options;
    EXPECT_NE(setFoldOption(options, info, "cadence").value_or("").find("must be one of"), std::string::npos);
  }
  FoldOptions options;
  ASSERT_FALSE(setFoldOption(options, *findFoldOption("bias_preparation"), "folded").has_value());
  EXPECT_EQ(options.bias_preparation, BiasPreparation::kFoldedConvs);
  EXPECT_EQ(biasPreparationName(options.bias_preparation), "folded");
  ASSERT_FALSE(setFoldOption(options, *findFoldOption("output_range"), "widen").has_value());
  EXPECT_EQ(options.output_range, OutputRange::kWiden);
}

TEST(BiasPreparation, AutoPreparesEveryConvWhenABiasIsInt32) {
  LoadedProgram loaded = loadFixture("qat_cadence_cnn.pt2");
  ASSERT_NE(firstInt32BiasReader(*loaded.graph), nullptr);
  BiasPreparationDecision decision = decideBiasPreparation(*loaded.graph, BiasPreparation::kAuto);
  EXPECT_EQ(decision.applied, BiasPreparation::kAllConvs);
  EXPECT_NE(decision.reason.find("encodes conv biases as int32"), std::string::npos) << decision.reason;
}

TEST(BiasPreparation, AutoPreparesOnlyFoldedConvsWhenBiasesAreFloat) {
  LoadedProgram loaded = loadFixture("qat_xnnpack_cnn.pt2");
  EXPECT_EQ(firstInt32BiasReader(*loaded.graph), nullptr);
  EXPECT_EQ(decideBiasPreparation(*loaded.graph, BiasPreparation::kAuto).applied, BiasPreparation::kFoldedConvs);
}

TEST(BiasPreparation, AnOptionForcesEitherPolicy) {
  LoadedProgram cadence = loadFixture("qat_cadence_cnn.pt2");
  BiasPreparationDecision forced = decideBiasPreparation(*cadence.graph, BiasPreparation::kFoldedConvs);
  EXPECT_EQ(forced.applied, BiasPreparation::kFoldedConvs);
  EXPECT_EQ(forced.reason, "requested");
  LoadedProgram xnnpack = loadFixture("qat_xnnpack_cnn.pt2");
  EXPECT_EQ(decideBiasPreparation(*xnnpack.graph, BiasPreparation::kAllConvs).applied, BiasPreparation::kAllConvs);
}

// The XNNPACK program of the backend-safety issue: its two BatchNorms sit
// behind quantized outputs (no QAT chain), so nothing folds.
TEST(BiasPreparation, XnnpackProgramNothingFoldsComesOutByteForByte) {
  const std::string input = readFile(fixturePath("qat_xnnpack_cnn.pt2"));
  FoldedArchive folded = foldArchiveBytes(input, {});
  EXPECT_FALSE(folded.report.changed);
  EXPECT_TRUE(folded.report.prepared_biases.empty());
  EXPECT_TRUE(folded.report.folded.empty());
  EXPECT_EQ(folded.report.bias_preparation.policy, "folded");
  EXPECT_EQ(folded.report.bias_preparation.requested, "auto");
  EXPECT_EQ(folded.report.removed_nodes, 0u);
  EXPECT_TRUE(folded.archive == input);
  EXPECT_NE(qatfold::report::foldReportText(folded.report, false).find("nothing to change"), std::string::npos);
}

TEST(BiasPreparation, ForcedAllOnXnnpackProgramQuantizesBothConvBiases) {
  LoadedProgram loaded = loadFixture("qat_xnnpack_cnn.pt2");
  FoldReport report = runFoldPipeline(*loaded.graph, withPolicy(BiasPreparation::kAllConvs));
  EXPECT_TRUE(report.changed);
  ASSERT_EQ(report.prepared_biases.size(), 2u);
  EXPECT_EQ(report.prepared_biases[0].action, "quantized the float bias to int32");
  EXPECT_NE(firstInt32BiasReader(*loaded.graph), nullptr);
}

// Both chains of the Cadence program fold, so preparing only folded convs
// gives the very archive ExecuTorch's policy gives.
TEST(BiasPreparation, FoldedConvsPolicyFoldsTheCadenceProgramIdentically) {
  const std::string input = readFile(fixturePath("qat_cadence_cnn.pt2"));
  FoldedArchive all = foldArchiveBytes(input, withPolicy(BiasPreparation::kAllConvs));
  FoldedArchive folded = foldArchiveBytes(input, withPolicy(BiasPreparation::kFoldedConvs));
  ASSERT_EQ(folded.report.folded.size(), 2u);
  ASSERT_EQ(folded.report.prepared_biases.size(), 1u);  // conv1 had no bias; the fold gave it one
  EXPECT_EQ(folded.report.prepared_biases[0].conv, all.report.prepared_biases[0].conv);
  EXPECT_EQ(folded.report.prepared_biases[0].action, "added a zero int32 bias");
  EXPECT_TRUE(folded.archive == all.archive);
}

// A program nothing folds is not cleaned up either: dead code an exporter
// left stays, since removing it is not the fold's business.
TEST(BiasPreparation, UnchangedGraphIsNotTouchedByCleanUp) {
  LoadedProgram loaded = loadFixture("float_cnn.pt2");
  FoldReport report = runFoldPipeline(*loaded.graph, {});
  EXPECT_FALSE(report.changed);
  EXPECT_EQ(loaded.graph->mutationCount(), 0u);
}

}  // namespace
}  // namespace qatfold::passes
