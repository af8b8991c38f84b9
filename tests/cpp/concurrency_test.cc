// The library is re-entrant: folds on many threads at once give the same
// bytes as folding one by one. Run under ThreadSanitizer by `make test`.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "qatfold/fold.h"
#include "qatfold/writer/pt2_writer.h"
#include "test_support.h"

namespace qatfold {
namespace {

constexpr int kThreads = 6;
constexpr int kRounds = 3;

std::vector<std::string> inputs() {
  std::vector<std::string> bytes;
  for (const std::string& name : testing::allFixtures()) bytes.push_back(testing::readFile(testing::fixturePath(name)));
  return bytes;
}

TEST(Concurrency, FoldingOnManyThreadsGivesTheSameBytes) {
  const std::vector<std::string> archives = inputs();
  std::vector<std::string> expected;
  for (const std::string& archive : archives) expected.push_back(foldArchiveBytes(archive, {}).archive);

  std::vector<std::vector<std::string>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        // Each thread walks the inputs from a different start.
        for (std::size_t k = 0; k < archives.size(); ++k) {
          std::size_t i = (k + static_cast<std::size_t>(t)) % archives.size();
          std::string folded = foldArchiveBytes(archives[i], {}).archive;
          if (folded != expected[i]) got[t].push_back(testing::allFixtures()[i]);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_TRUE(got[t].empty()) << "thread " << t << " differed on " << got[t][0];
}

TEST(Concurrency, WritingFilesFromManyThreadsIntoOneFolder) {
  const auto dir = testing::makeTempDir("threads");
  const std::string fixture = testing::fixturePath("qat_cadence_cnn.pt2");
  const std::string expected = foldArchiveBytes(testing::readFile(fixture), {}).archive;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      LoadedProgram loaded = LoadedProgram::open(fixture);
      passes::runFoldPipeline(*loaded.graph, {});
      // Half the threads race for one target, the others write their own.
      const std::string target = (dir / (t % 2 ? "shared.pt2" : "own" + std::to_string(t) + ".pt2")).string();
      writeProgramFile(*loaded.archive, *loaded.graph, target);
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    ++files;
    EXPECT_EQ(testing::readFile(entry.path().string()), expected) << entry.path();
    EXPECT_EQ(entry.path().filename().string().find(".qatfold-"), std::string::npos) << "left behind: " << entry.path();
  }
  EXPECT_EQ(files, static_cast<std::size_t>(kThreads / 2 + 1));  // one own file per even thread, and the shared one
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qatfold
