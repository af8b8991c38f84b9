// The command line as a user runs it: exit codes, messages, files left behind.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "qatfold/archive/archive.h"
#include "qatfold/program/json.h"
#include "test_support.h"
#include "text_graphs.h"

namespace qatfold {
namespace {

using testing::fixturePath;
using testing::loadFixture;
using testing::readFile;
using testing::writeFile;

struct CommandResult {
  int exit_code;
  std::string out;
  std::string err;
};

class Cli : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::makeTempDir("cli"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  CommandResult run(const std::string& args) const {
    const std::string out = path("stdout.txt");
    const std::string err = path("stderr.txt");
    std::string command = std::string(QATFOLD_CLI) + " " + args + " >" + out + " 2>" + err + " </dev/null";
    int status = std::system(command.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, readFile(out), readFile(err)};
  }

  // Runs roundtrip on `bytes` and checks the bad-input contract: exit 1, one
  // line naming the file and containing `expected`, no output, input intact.
  void expectRejected(const std::string& bytes, const std::string& expected) {
    const std::string input = path("bad.pt2");
    const std::string output = path("out.pt2");
    writeFile(input, bytes);
    CommandResult result = run("roundtrip " + input + " -o " + output);
    EXPECT_EQ(result.exit_code, 1) << result.err;
    EXPECT_EQ(result.err.rfind("qatfold: error: " + input + ": ", 0), 0u) << result.err;
    EXPECT_NE(result.err.find(expected), std::string::npos) << result.err;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
    EXPECT_FALSE(std::filesystem::exists(output));
    EXPECT_EQ(readFile(input), bytes);
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      EXPECT_EQ(entry.path().filename().string().find(".qatfold-"), std::string::npos) << entry.path();
    }
  }

  std::filesystem::path dir_;
};

TEST_F(Cli, FoldThatChangesNothingWritesTheInputByteForByte) {
  const std::string input = fixturePath("qat_xnnpack_cnn.pt2");
  CommandResult result = run("fold " + input + " -o " + path("out.pt2"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(readFile(path("out.pt2")) == readFile(input));
  EXPECT_NE(result.out.find("bias preparation: folded convs only (auto: "), std::string::npos) << result.out;
}

TEST_F(Cli, BiasPrepOptionForcesAPolicyAndRejectsOthers) {
  const std::string input = fixturePath("qat_xnnpack_cnn.pt2");
  CommandResult forced = run("fold " + input + " --dry-run --json --bias-prep all");
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  Json report = parseJson(forced.out);
  EXPECT_EQ(report["bias_preparation"]["policy"], "all");
  EXPECT_EQ(report["bias_preparation"]["requested"], "all");
  EXPECT_EQ(report["prepared_biases"].size(), 2u);
  EXPECT_EQ(report["changed"], true);
  CommandResult bad = run("fold " + input + " --dry-run --bias-prep cadence");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--bias-prep"), std::string::npos) << bad.err;
}

TEST_F(Cli, VersionAndHelp) {
  CommandResult version = run("--version");
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out.rfind("qatfold ", 0), 0u);
  CommandResult help = run("--help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("inspect"), std::string::npos);
  EXPECT_NE(help.out.find("Exit codes"), std::string::npos);
}

TEST_F(Cli, UsageErrorsExitWithTwo) {
  EXPECT_EQ(run("").exit_code, 2);
  EXPECT_EQ(run("frobnicate x.pt2").exit_code, 2);
  EXPECT_EQ(run("roundtrip " + fixturePath("float_cnn.pt2")).exit_code, 2);  // no -o
}

TEST_F(Cli, InspectShowsWhatIsInside) {
  CommandResult text = run("inspect " + fixturePath("qat_cadence_cnn.pt2"));
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("aten.batch_norm.default"), std::string::npos);
  EXPECT_NE(text.out.find("x: float32[2, 3, 16, 16]"), std::string::npos);
  CommandResult json = run("inspect --json " + fixturePath("qat_cadence_cnn.pt2"));
  ASSERT_EQ(json.exit_code, 0) << json.err;
  Json report = parseJson(json.out);
  EXPECT_EQ(report["schema_version"], "8.20");
  EXPECT_EQ(report["parameters"]["count"], 7);
  EXPECT_EQ(report["inputs"][0]["shape"], Json::array({2, 3, 16, 16}));
  bool has_bn = false;
  for (const Json& op : report["ops"]) has_bn |= op["op"] == "aten.batch_norm.default" && op["count"] == 2;
  EXPECT_TRUE(has_bn);
}

TEST_F(Cli, RoundtripWritesAnEquivalentArchive) {
  const std::string output = path("rt.pt2");
  CommandResult result = run("roundtrip " + fixturePath("buffers.pt2") + " -o " + output);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto original = Archive::open(fixturePath("buffers.pt2"));
  auto written = Archive::open(output);
  ASSERT_EQ(written->paths(), original->paths());
  ASSERT_FALSE(original->paths().empty());
  for (const std::string& record : original->paths())
    EXPECT_EQ(written->read(record), original->read(record)) << record;
}

TEST_F(Cli, RoundtripOntoItsInputIsSafe) {
  const std::string input = path("model.pt2");
  writeFile(input, readFile(fixturePath("tied_weights.pt2")));
  CommandResult result = run("roundtrip " + input + " -o " + input);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto reread = Archive::open(input);
  auto original = Archive::open(fixturePath("tied_weights.pt2"));
  for (const std::string& record : original->paths()) EXPECT_EQ(reread->read(record), original->read(record));
}

TEST_F(Cli, FoldWritesTheFoldedArchiveAndReports) {
  const std::string output = path("folded.pt2");
  CommandResult result = run("fold " + fixturePath("qat_cadence_cnn.pt2") + " -o " + output);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("chains found 2, folded 2, skipped 0"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("conv2d (conv1)"), std::string::npos) << result.out;
  CommandResult inspect = run("inspect --json " + output);
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  const Json report = parseJson(inspect.out);
  std::size_t convs = 0;
  for (const Json& op : report["ops"]) {
    EXPECT_EQ(op["op"].get<std::string>().find("batch_norm"), std::string::npos);
    if (op["op"] == "aten.conv2d.default") convs += op["count"].get<std::size_t>();
  }
  EXPECT_EQ(convs, 2u);  // the folded program still has its two convs
}

// -o as `cp` treats its destination: nothing it points at is destroyed.
class CliOutput : public Cli {
 protected:
  // A character device node in the test folder (root only, as CI runs).
  bool makeDevice(const std::string& name, unsigned minor) {
    return ::mknod(path(name).c_str(), S_IFCHR | 0666, makedev(1, minor)) == 0;
  }
  static mode_t kind(const std::string& file) {
    struct stat st{};
    return ::lstat(file.c_str(), &st) == 0 ? (st.st_mode & S_IFMT) : 0;
  }
  static mode_t permissions(const std::string& file) {
    struct stat st{};
    return ::stat(file.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
  }
  // The one-line error of a refused or failed output, naming `output`.
  static void expectOneLineError(const CommandResult& result, const std::string& output, const std::string& expected) {
    EXPECT_EQ(result.exit_code, 1) << result.out << result.err;
    EXPECT_EQ(result.err.rfind("qatfold: error: " + output + ": ", 0), 0u) << result.err;
    EXPECT_NE(result.err.find(expected), std::string::npos) << result.err;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  }
  const std::string model_ = fixturePath("qat_cadence_cnn.pt2");
};

TEST_F(CliOutput, ACharacterDeviceIsWrittenThroughAndStaysADevice) {
  if (!makeDevice("null", 3) || !makeDevice("full", 7)) GTEST_SKIP() << "mknod needs root";
  CommandResult result = run("fold " + model_ + " -o " + path("null"));
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(kind(path("null")), static_cast<mode_t>(S_IFCHR));
  // A full device fails the write: one line, exit 1, still a device.
  result = run("fold " + model_ + " -o " + path("full"));
  expectOneLineError(result, path("full"), "No space left on device");
  EXPECT_EQ(kind(path("full")), static_cast<mode_t>(S_IFCHR));
  EXPECT_EQ(result.out.find("wrote"), std::string::npos) << result.out;
}

TEST_F(CliOutput, ASymlinkStaysASymlinkAndItsTargetIsWritten) {
  ASSERT_EQ(::symlink("target.pt2", path("link.pt2").c_str()), 0);  // dangling, relative
  ASSERT_EQ(run("fold " + model_ + " -o " + path("link.pt2")).exit_code, 0);
  EXPECT_EQ(kind(path("link.pt2")), static_cast<mode_t>(S_IFLNK));
  EXPECT_EQ(kind(path("target.pt2")), static_cast<mode_t>(S_IFREG));
  const std::string folded = readFile(path("target.pt2"));
  // Again through a chain of two links onto the now existing target.
  ASSERT_EQ(::symlink(path("link.pt2").c_str(), path("link2.pt2").c_str()), 0);
  writeFile(path("target.pt2"), "old");
  ASSERT_EQ(run("fold " + model_ + " -o " + path("link2.pt2")).exit_code, 0);
  EXPECT_EQ(kind(path("link2.pt2")), static_cast<mode_t>(S_IFLNK));
  EXPECT_EQ(kind(path("link.pt2")), static_cast<mode_t>(S_IFLNK));
  EXPECT_EQ(readFile(path("target.pt2")), folded);
  ASSERT_EQ(run("inspect " + path("link.pt2")).exit_code, 0);
}

TEST_F(CliOutput, AFoldInPlaceKeepsTheFileMode) {
  const std::string input = path("model.pt2");
  writeFile(input, readFile(model_));
  ASSERT_EQ(::chmod(input.c_str(), 0600), 0);
  ASSERT_EQ(run("fold " + input + " -o " + input).exit_code, 0);
  EXPECT_EQ(permissions(input), 0600u);
  EXPECT_NE(readFile(input), readFile(model_));  // folded
  // A new file gets the umask's mode; an existing one keeps its own.
  writeFile(path("other.pt2"), "old");
  ASSERT_EQ(::chmod(path("other.pt2").c_str(), 0640), 0);
  ASSERT_EQ(run("roundtrip " + model_ + " -o " + path("other.pt2")).exit_code, 0);
  EXPECT_EQ(permissions(path("other.pt2")), 0640u);
}

TEST_F(CliOutput, AHardLinkKeepsTheOldContents) {
  // Documented: the output name gets a new file (atomic rename); other names
  // of the old file keep what it held.
  writeFile(path("out.pt2"), "old");
  ASSERT_EQ(::link(path("out.pt2").c_str(), path("other-name.pt2").c_str()), 0);
  ASSERT_EQ(run("fold " + model_ + " -o " + path("out.pt2")).exit_code, 0);
  EXPECT_EQ(readFile(path("other-name.pt2")), "old");
  EXPECT_NE(readFile(path("out.pt2")), "old");
}

TEST_F(CliOutput, AFifoAndADirectoryAreRefused) {
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0644), 0);
  CommandResult result = run("fold " + model_ + " -o " + path("fifo"));
  expectOneLineError(result, path("fifo"), "is a FIFO");
  EXPECT_EQ(kind(path("fifo")), static_cast<mode_t>(S_IFIFO));
  std::filesystem::create_directory(path("dir"));
  expectOneLineError(run("roundtrip " + model_ + " -o " + path("dir")), path("dir"), "is a directory");
  EXPECT_EQ(kind(path("dir")), static_cast<mode_t>(S_IFDIR));
  // Through a symlink, the same.
  ASSERT_EQ(::symlink(path("fifo").c_str(), path("to-fifo").c_str()), 0);
  expectOneLineError(run("fold " + model_ + " -o " + path("to-fifo")), path("to-fifo"), "is a FIFO");
}

TEST_F(CliOutput, NothingIsWrittenUnlessEveryOutputCanBe) {
  CommandResult result = run("fold " + model_ + " -o " + path("out.pt2") + " --dot-after " + path("missing/a.dot"));
  expectOneLineError(result, path("missing/a.dot"), "cannot create a temporary file");
  EXPECT_FALSE(std::filesystem::exists(path("out.pt2")));
  result = run("fold " + model_ + " -o " + path("missing/out.pt2") + " --dot-before " + path("b.dot"));
  expectOneLineError(result, path("missing/out.pt2"), "cannot create a temporary file");
  EXPECT_FALSE(std::filesystem::exists(path("b.dot")));
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    EXPECT_EQ(entry.path().filename().string().find(".qatfold-"), std::string::npos) << entry.path();
  }
}

TEST_F(Cli, FoldJsonAndDryRun) {
  const std::string output = path("never.pt2");
  CommandResult result = run("fold --dry-run --json " + fixturePath("qat_cadence_cnn.pt2"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  Json report = parseJson(result.out);
  EXPECT_EQ(report["folded_count"], 2);
  EXPECT_EQ(report["output"], nullptr);
  EXPECT_EQ(report["folded"].size(), 2u);
  EXPECT_FALSE(std::filesystem::exists(output));
  EXPECT_EQ(run("fold " + fixturePath("qat_cadence_cnn.pt2")).exit_code, 2);  // neither -o nor --dry-run
  EXPECT_EQ(run("fold --dry-run -o " + output + " " + fixturePath("qat_cadence_cnn.pt2")).exit_code, 2);
}

TEST_F(Cli, FoldExplainsEveryBatchNormLeft) {
  CommandResult plain = run("fold --dry-run " + fixturePath("float_cnn.pt2"));
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.out.find("not folded:"), std::string::npos) << plain.out;
  CommandResult explained = run("fold --dry-run --explain " + fixturePath("float_cnn.pt2"));
  EXPECT_NE(explained.out.find("not folded: batch_norm (bn1): the program is not quantized"), std::string::npos)
      << explained.out;
}

TEST_F(Cli, ExplainGivesTheFloatChainItsOwnEpsReason) {
  // A text graph, assembled into an archive and folded as a user would.
  const std::string text = path("chain.txt");
  writeFile(text, testing::edited(testing::kFloatChain,
                                  {{"add.Tensor(self=%var, other=1e-05)", "add.Tensor(self=%var, other=0.01)"}}));
  CommandResult assembled = run("assemble " + text + " -o " + path("chain.pt2"));
  ASSERT_EQ(assembled.exit_code, 0) << assembled.err;
  CommandResult explained = run("fold --dry-run --explain " + path("chain.pt2"));
  ASSERT_EQ(explained.exit_code, 0) << explained.err;
  EXPECT_NE(explained.out.find("not folded: bn: the scale chain's eps 0.01 differs from batch_norm's eps 1e-05 "
                               "(folded only for quantized convs)"),
            std::string::npos)
      << explained.out;
  EXPECT_EQ(explained.out.find("int32"), explained.out.find("int32 bias elements clamped")) << explained.out;
  CommandResult json = run("fold --dry-run --json " + path("chain.pt2"));
  EXPECT_EQ(parseJson(json.out)["skipped"][0]["code"], "eps-mismatch-float") << json.out;
}

TEST_F(Cli, RefusalsWithALimitSayWhichFlagRaisesIt) {
  const std::string text = path("chain.txt");
  writeFile(text, testing::edited(testing::kQatChain,
                                  {{"add.Tensor(self=%var, other=1e-05)", "add.Tensor(self=%var, other=0.01)"}}));
  ASSERT_EQ(run("assemble " + text + " -o " + path("chain.pt2")).exit_code, 0);
  CommandResult refused = run("fold --dry-run " + path("chain.pt2"));
  EXPECT_NE(refused.out.find("more than the eps tolerance 0.001 (raise it with --eps-tolerance)"), std::string::npos)
      << refused.out;
  CommandResult raised = run("fold --dry-run --eps-tolerance 0.05 " + path("chain.pt2"));
  EXPECT_NE(raised.out.find("folded 1"), std::string::npos) << raised.out;
  EXPECT_NE(raised.out.find("ignored (within --eps-tolerance)"), std::string::npos) << raised.out;
}

TEST_F(Cli, InspectTextReadsBackThroughAssemble) {
  CommandResult printed = run("inspect --text " + fixturePath("qat_cadence_cnn.pt2"));
  ASSERT_EQ(printed.exit_code, 0) << printed.err;
  EXPECT_NE(printed.out.find("%batch_norm = aten.batch_norm.default(input=%div_1,"), std::string::npos) << printed.out;
  writeFile(path("cnn.txt"), printed.out);
  // Constants past kPrintedElements are not printed: assembling them is an
  // error, with no archive written, unless a fill is asked for.
  CommandResult elided = run("assemble " + path("cnn.txt") + " -o " + path("cnn.pt2"));
  EXPECT_EQ(elided.exit_code, 1);
  EXPECT_NE(elided.err.find("has no data (the text elides tensors of over 32 elements)"), std::string::npos)
      << elided.err;
  EXPECT_EQ(std::count(elided.err.begin(), elided.err.end(), '\n'), 1) << elided.err;
  EXPECT_FALSE(std::filesystem::exists(path("cnn.pt2")));
  ASSERT_EQ(run("assemble " + path("cnn.txt") + " --fill-elided 0 -o " + path("cnn.pt2")).exit_code, 0);
  CommandResult reprinted = run("inspect --text " + path("cnn.pt2"));
  EXPECT_NE(reprinted.out.find("%batch_norm = aten.batch_norm.default(input=%div_1,"), std::string::npos);
  CommandResult bad = run("assemble " + path("missing.txt") + " -o " + path("out.pt2"));
  EXPECT_EQ(bad.exit_code, 1);
  writeFile(path("bad.txt"), "input %x: float32[2]\n%y = aten.relu.default(self=%z): float32[2]\nreturn %y\n");
  bad = run("assemble " + path("bad.txt") + " -o " + path("out.pt2"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.err, "qatfold: error: " + path("bad.txt") + ": line 2: '%z' is not defined\n");
  EXPECT_FALSE(std::filesystem::exists(path("out.pt2")));
}

TEST_F(Cli, FoldRejectsBadInputLikeEveryCommand) {
  const std::string input = path("bad.pt2");
  writeFile(input, "garbage");
  CommandResult result = run("fold " + input + " -o " + path("out.pt2"));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.err.rfind("qatfold: error: " + input + ": not a zip archive", 0), 0u) << result.err;
  EXPECT_FALSE(std::filesystem::exists(path("out.pt2")));
}

TEST_F(Cli, RejectsMissingFile) {
  CommandResult result = run("inspect " + path("nope.pt2"));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("nope.pt2: cannot open"), std::string::npos) << result.err;
}

TEST_F(Cli, RejectsNotAZip) { expectRejected("this is a text file, not an archive\n", "not a zip archive"); }

TEST_F(Cli, RejectsTruncatedArchive) {
  std::string bytes = readFile(fixturePath("float_cnn.pt2"));
  expectRejected(bytes.substr(0, bytes.size() - 200), "zip");
}

TEST_F(Cli, RejectsRecordRunningPastTheFile) {
  std::string bytes = readFile(fixturePath("float_cnn.pt2"));
  auto archive = Archive::fromBytes(bytes);
  // Find the central directory entry of the last record and inflate its sizes.
  const ZipEntry& last = archive->zip().entries().back();
  std::string needle = "PK\x01\x02";
  std::size_t pos = bytes.rfind(needle);
  ASSERT_NE(pos, std::string::npos);
  ASSERT_EQ(bytes.compare(pos + 46, last.name.size(), last.name), 0);
  for (int field : {20, 24}) {  // compressed and plain size
    bytes[pos + field + 2] = '\x7f';
  }
  expectRejected(bytes, "run past the end of the file");
}

TEST_F(Cli, RejectsMissingModelJson) {
  auto archive = Archive::open(fixturePath("float_cnn.pt2"));
  ArchiveEdit edit;
  edit.remove("models/model.json");
  expectRejected(testing::rewrite(*archive, edit), "no models/*.json");
}

TEST_F(Cli, RejectsMalformedJson) {
  auto archive = Archive::open(fixturePath("float_cnn.pt2"));
  ArchiveEdit edit;
  edit.put("models/model.json", "{\"graph_module\": [1, 2");
  expectRejected(testing::rewrite(*archive, edit), "models/model.json: malformed JSON");
}

TEST_F(Cli, RejectsTensorMetaLargerThanItsPayload) {
  expectRejected(
      testing::withWeightsConfig(
          "float_cnn.pt2",
          [](Json& config) { config["config"]["fc.weight"]["tensor_meta"]["sizes"][1] = Json{{"as_int", 4096}}; }),
      "payload 'fc.weight'");
}

TEST_F(Cli, RejectsUnknownSchemaMajorVersion) {
  expectRejected(testing::withModelJson("float_cnn.pt2", [](Json& m) { m["schema_version"]["major"] = 42; }),
                 "unsupported schema major version 42");
}

TEST_F(Cli, MaxRiskFailsTheRunAfterWriting) {
  // The fixture's riskiest conv (conv2) shifts 7.4% of its output range.
  const std::string out = path("out.pt2");
  CommandResult over = run("fold " + fixturePath("qat_cadence_cnn.pt2") + " -o " + out + " --max-risk 0.05");
  EXPECT_EQ(over.exit_code, 3) << over.err;
  EXPECT_NE(over.err.find("1 folded conv(s) exceed --max-risk 0.05; worst conv2d_1 (conv2) at 7.4%"), std::string::npos)
      << over.err;
  EXPECT_TRUE(std::filesystem::exists(out)) << "the archive is written before the risk check fails the run";

  CommandResult under = run("fold " + fixturePath("qat_cadence_cnn.pt2") + " -o " + out + " --max-risk 0.08");
  EXPECT_EQ(under.exit_code, 0) << under.err;
  EXPECT_EQ(run("fold " + fixturePath("qat_cadence_cnn.pt2") + " --dry-run --max-risk 0").exit_code, 3);
}

// Graphviz pictures: the whole graph, and each chain before and after.
TEST_F(Cli, DotPictures) {
  auto count = [](const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  const std::string model = fixturePath("qat_cadence_cnn.pt2");
  CommandResult whole = run("inspect --dot " + model);
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  EXPECT_EQ(whole.out.rfind("digraph qatfold {", 0), 0u);
  EXPECT_EQ(count(whole.out, "shape=box"), loadFixture("qat_cadence_cnn.pt2").graph->nodes().size());

  const std::string before = path("before.dot");
  const std::string after = path("after.dot");
  CommandResult fold = run("fold " + model + " --dry-run --dot-before " + before + " --dot-after " + after);
  ASSERT_EQ(fold.exit_code, 0) << fold.err;
  const std::string before_dot = readFile(before);
  const std::string after_dot = readFile(after);
  EXPECT_EQ(count(before_dot, "label=\"batch_norm"), 2u) << before_dot;
  const std::string conv_box = "fillcolor=\"#9ecae1\"";  // convs are drawn blue
  EXPECT_EQ(count(before_dot, conv_box), 2u);
  EXPECT_EQ(count(after_dot, "batch_norm"), 0u) << after_dot;
  EXPECT_EQ(count(after_dot, conv_box), 2u);
  EXPECT_EQ(count(after_dot, "label=\"div"), 0u);
  // Graphviz itself must accept them (graphviz is a test dependency).
  for (const std::string& file : {before, after}) {
    EXPECT_EQ(std::system(("dot -Tsvg " + file + " -o " + file + ".svg 2>/dev/null").c_str()), 0) << file;
  }
}

}  // namespace
}  // namespace qatfold

namespace qatfold {
namespace {

class CliStrict : public Cli {
 protected:
  // The text graph, assembled into an archive in the test folder.
  std::string assembled(const std::string& name, const std::string& text) {
    writeFile(path(name + ".txt"), text);
    CommandResult result = run("assemble " + path(name + ".txt") + " -o " + path(name + ".pt2"));
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return path(name + ".pt2");
  }
};

TEST_F(CliStrict, ExitsFourOnTrainingModeAfterWritingTheInputUnchanged) {
  const std::string model =
      assembled("train", testing::edited(testing::kQatChain, {{"training=False", "training=True"}}));
  CommandResult plain = run("fold " + model + " -o " + path("out.pt2"));
  EXPECT_EQ(plain.exit_code, 0);
  EXPECT_NE(plain.out.find("warning: 1 batch_norm(s) run in training mode (bn)"), std::string::npos) << plain.out;
  CommandResult strict = run("fold " + model + " -o " + path("out.pt2") + " --strict");
  EXPECT_EQ(strict.exit_code, 4);
  EXPECT_NE(strict.err.find("qatfold: strict: 1 batch_norm(s) left:\n  bn: batch_norm runs in training mode"),
            std::string::npos)
      << strict.err;
  EXPECT_EQ(readFile(path("out.pt2")), readFile(model));  // written, byte for byte the input
}

TEST_F(CliStrict, ExitsZeroOnAProgramThatFoldsCompletely) {
  EXPECT_EQ(run("fold " + fixturePath("qat_cadence_cnn.pt2") + " -o " + path("out.pt2") + " --strict").exit_code, 0);
}

TEST_F(CliStrict, FourWinsOverMaxRiskThree) {
  const std::string model = assembled(
      "left",
      testing::edited(testing::kQatChain, {{"return %bn",
                                            "%bn2 = aten.batch_norm.default(input=%bn, weight=%bn_w, bias=%bn_b, "
                                            "running_mean=%mean, running_var=%var, training=False, momentum=0.1, "
                                            "eps=1e-05, cudnn_enabled=False): float32[1, 2, 4, 4]\nreturn %bn2"}}));
  EXPECT_EQ(run("fold " + model + " -o " + path("out.pt2") + " --max-risk 0").exit_code, 3);
  CommandResult both = run("fold " + model + " -o " + path("out.pt2") + " --max-risk 0 --strict");
  EXPECT_EQ(both.exit_code, 4);
  EXPECT_NE(both.err.find("exceed --max-risk"), std::string::npos) << both.err;
  EXPECT_NE(both.err.find("  bn2: "), std::string::npos) << both.err;
  EXPECT_TRUE(std::filesystem::exists(path("out.pt2")));
}

TEST_F(CliStrict, AnUnquantizedProgramWarnsAndFailsStrict) {
  const std::string model = assembled("float", testing::kFloatChain);
  CommandResult strict = run("fold " + model + " --dry-run --strict");
  EXPECT_EQ(strict.exit_code, 4);
  EXPECT_NE(strict.out.find("warning: 1 batch_norm(s) and no quantize or dequantize op"), std::string::npos);
  EXPECT_NE(strict.err.find("no quantization"), std::string::npos) << strict.err;
}

}  // namespace
}  // namespace qatfold
