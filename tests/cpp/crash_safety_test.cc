// Crash-safe writing: qatfold killed with SIGKILL in the middle of writing a
// large archive leaves the target path holding its previous file or nothing,
// never a partial archive; the next run clears the dead run's temporary file.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "qatfold/archive/archive.h"
#include "test_support.h"

namespace qatfold {
namespace {

namespace fs = std::filesystem;

// A real archive made large by a 256 MiB extra record (copied verbatim).
void writeLargeArchive(const std::string& path) {
  auto archive = Archive::open(testing::fixturePath("qat_cadence_cnn.pt2"));
  ArchiveEdit edit;
  edit.put("data/extra/blob", std::string(256u << 20, 'q'));
  AtomicFileSink sink(path);
  writeArchive(*archive, edit, sink);
  sink.commit();
}

// Temporary files of `target`'s writers in its folder.
std::vector<fs::path> temporaries(const fs::path& target) {
  std::vector<fs::path> found;
  const std::string prefix = "." + target.filename().string() + ".qatfold-";
  for (const auto& entry : fs::directory_iterator(target.parent_path())) {
    if (entry.path().filename().string().rfind(prefix, 0) == 0) found.push_back(entry.path());
  }
  return found;
}

// Starts `qatfold roundtrip input -o target` and SIGKILLs it once its
// temporary file holds more than `bytes`; returns whether it was caught mid-write.
bool killMidWrite(const std::string& input, const fs::path& target, std::uintmax_t bytes) {
  pid_t child = ::fork();
  if (child == 0) {
    ::freopen("/dev/null", "w", stdout);
    ::execl(QATFOLD_CLI, QATFOLD_CLI, "roundtrip", input.c_str(), "-o", target.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bool caught = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    for (const fs::path& temp : temporaries(target)) {
      std::error_code ec;
      if (fs::file_size(temp, ec) > bytes && !ec) caught = true;
    }
    if (caught) break;
    int status = 0;
    if (::waitpid(child, &status, WNOHANG) == child) return false;  // finished first
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  return caught && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

class CrashSafety : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::makeTempDir("crash");
    input_ = (dir_ / "large.pt2").string();
    writeLargeArchive(input_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::string input_;
};

TEST_F(CrashSafety, KilledWriteLeavesThePreviousFile) {
  const fs::path target = dir_ / "model.pt2";
  const std::string previous = testing::readFile(testing::fixturePath("float_cnn.pt2"));
  testing::writeFile(target.string(), previous);

  ASSERT_TRUE(killMidWrite(input_, target, 16u << 20)) << "the write finished before it could be killed";
  EXPECT_EQ(testing::readFile(target.string()), previous) << "the target was touched by a killed write";
  EXPECT_EQ(temporaries(target).size(), 1u) << "a killed process cannot clean up; its temporary file stays";

  // The next run clears the dead run's temporary file and writes the target.
  ASSERT_EQ(std::system(
                (std::string(QATFOLD_CLI) + " roundtrip " + input_ + " -o " + target.string() + " >/dev/null").c_str()),
            0);
  EXPECT_TRUE(temporaries(target).empty());
  EXPECT_EQ(fs::file_size(target), fs::file_size(input_));
  EXPECT_NO_THROW(LoadedProgram::open(target.string()));
}

TEST_F(CrashSafety, KilledWriteLeavesNothingWhereThereWasNothing) {
  const fs::path target = dir_ / "fresh.pt2";
  ASSERT_TRUE(killMidWrite(input_, target, 16u << 20)) << "the write finished before it could be killed";
  EXPECT_FALSE(fs::exists(target));
}

TEST_F(CrashSafety, OutputFileGetsTheUsualPermissions) {
  const fs::path target = dir_ / "perm.pt2";
  const mode_t mask = ::umask(022);
  ASSERT_EQ(std::system(
                (std::string(QATFOLD_CLI) + " roundtrip " + input_ + " -o " + target.string() + " >/dev/null").c_str()),
            0);
  ::umask(mask);
  EXPECT_EQ(fs::status(target).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
}

}  // namespace
}  // namespace qatfold
