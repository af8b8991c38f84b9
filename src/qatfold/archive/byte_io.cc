#include "qatfold/archive/byte_io.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include "qatfold/error.h"

namespace qatfold {
namespace {

std::string errnoText() { return std::strerror(errno); }

// Writes all `count` bytes to `fd`, retrying short writes; `path` names it in errors.
void writeAll(int fd, const char* data, std::size_t count, const std::string& path) {
  while (count > 0) {
    ssize_t put = ::write(fd, data, count);
    if (put < 0) {
      if (errno == EINTR) continue;
      throw OutputError("cannot write " + path + ": " + errnoText());
    }
    data += put;
    count -= static_cast<std::size_t>(put);
  }
}

class FileSource : public ByteSource {
 public:
  FileSource(int fd, std::uint64_t size, std::string path) : fd_(fd), size_(size), path_(std::move(path)) {}
  ~FileSource() override { ::close(fd_); }

  std::uint64_t size() const override { return size_; }
  const std::string& name() const override { return path_; }
  int fileDescriptor() const override { return fd_; }

  void readAt(std::uint64_t offset, void* out, std::size_t count) const override {
    if (offset > size_ || count > size_ - offset) {
      throw Error("read past the end of the file (offset " + std::to_string(offset) + ", " + std::to_string(count) +
                  " bytes, file has " + std::to_string(size_) + ")");
    }
    auto* dst = static_cast<char*>(out);
    while (count > 0) {
      ssize_t got = ::pread(fd_, dst, count, static_cast<off_t>(offset));
      if (got < 0) {
        if (errno == EINTR) continue;
        throw Error("cannot read: " + errnoText());
      }
      if (got == 0) throw Error("file shrank while reading");
      dst += got;
      offset += static_cast<std::uint64_t>(got);
      count -= static_cast<std::size_t>(got);
    }
  }

 private:
  int fd_;
  std::uint64_t size_;
  std::string path_;
};

class MemorySource : public ByteSource {
 public:
  MemorySource(std::string bytes, std::string name) : bytes_(std::move(bytes)), name_(std::move(name)) {}
  std::uint64_t size() const override { return bytes_.size(); }
  const std::string& name() const override { return name_; }
  void readAt(std::uint64_t offset, void* out, std::size_t count) const override {
    if (offset > bytes_.size() || count > bytes_.size() - offset) {
      throw Error("read past the end of the data (offset " + std::to_string(offset) + ", " + std::to_string(count) +
                  " bytes, data has " + std::to_string(bytes_.size()) + ")");
    }
    if (count > 0) std::memcpy(out, bytes_.data() + offset, count);
  }

 private:
  std::string bytes_;
  std::string name_;
};

constexpr std::size_t kSinkBufferSize = 1 << 20;

}  // namespace

std::unique_ptr<ByteSource> openFileSource(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open: " + errnoText());
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    std::string why = errnoText();
    ::close(fd);
    throw Error("cannot stat: " + why);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error("not a regular file");
  }
  return std::make_unique<FileSource>(fd, static_cast<std::uint64_t>(st.st_size), path);
}

std::unique_ptr<ByteSource> makeMemorySource(std::string bytes, std::string name) {
  return std::make_unique<MemorySource>(std::move(bytes), std::move(name));
}

void streamRange(const ByteSource& source, std::uint64_t offset, std::uint64_t count, ByteSink& sink) {
  std::string buffer(static_cast<std::size_t>(std::min<std::uint64_t>(count, 1ull << 20)), '\0');
  while (count > 0) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(count, buffer.size()));
    source.readAt(offset, buffer.data(), n);
    sink.write(buffer.data(), n);
    offset += n;
    count -= n;
  }
}

void StringSink::write(const void* data, std::size_t count) { bytes_.append(static_cast<const char*>(data), count); }

namespace {

// Removes temporary files that a killed run (SIGKILL, power loss) left next
// to `target`: ".<name>.qatfold-<pid>-..." whose process no longer exists.
void removeStaleTemporaries(const std::filesystem::path& dir, const std::string& target_name) {
  std::string prefix = ".";
  prefix.append(target_name).append(".qatfold-");
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      std::filesystem::remove(entry.path(), ec);
    }
  }
}

}  // namespace

AtomicFileSink::AtomicFileSink(const std::string& target) : target_(target) {
  std::filesystem::path target_path(target);
  std::filesystem::path dir = target_path.parent_path();
  if (dir.empty()) dir = ".";
  removeStaleTemporaries(dir, target_path.filename().string());
  // Created 0666 (less the umask, applied by the kernel) with O_EXCL, rather
  // than mkstemp's 0600 plus a chmod: reading the umask means setting it,
  // which races with other threads writing files.
  static std::atomic<std::uint64_t> counter{0};
  std::random_device entropy;
  for (int attempt = 0; fd_ < 0; ++attempt) {
    char suffix[40];
    std::snprintf(suffix, sizeof suffix, ".qatfold-%d-%llx-%x", static_cast<int>(::getpid()),
                  static_cast<unsigned long long>(counter.fetch_add(1)), entropy());
    std::string name = ".";
    name.append(target_path.filename().string()).append(suffix);  // (appends: GCC 12 -O3 misreads '+' here)
    std::string candidate = (dir / name).string();
    fd_ = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0) {
      temp_path_ = candidate;
    } else if (errno != EEXIST || attempt > 100) {
      throw OutputError("cannot create a temporary file in " + dir.string() + ": " + errnoText());
    }
  }
  buffer_.reserve(kSinkBufferSize);
}

AtomicFileSink::AtomicFileSink(const std::string& target, unsigned mode, std::pair<unsigned, unsigned> owner)
    : AtomicFileSink(target) {
  // The owner first: chown clears the set-id bits that the mode then restores.
  if (::fchown(fd_, owner.first, owner.second) != 0 && errno != EPERM) {
    throw OutputError("cannot set the owner of " + temp_path_ + ": " + errnoText());
  }
  if (::fchmod(fd_, static_cast<mode_t>(mode & 07777)) != 0) {
    throw OutputError("cannot set the mode of " + temp_path_ + ": " + errnoText());
  }
}

AtomicFileSink::~AtomicFileSink() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
}

void AtomicFileSink::write(const void* data, std::size_t count) {
  if (buffer_.size() + count > kSinkBufferSize) flushBuffer();
  if (count >= kSinkBufferSize) {
    writeAll(fd_, static_cast<const char*>(data), count, temp_path_);
  } else {
    buffer_.append(static_cast<const char*>(data), count);
  }
  position_ += count;
}

bool AtomicFileSink::copyRange(const ByteSource& source, std::uint64_t offset, std::uint64_t count) {
  const int in = source.fileDescriptor();
  if (in < 0) return false;
  if (offset > source.size() || count > source.size() - offset) {
    throw Error("read past the end of the file (offset " + std::to_string(offset) + ", " + std::to_string(count) +
                " bytes, file has " + std::to_string(source.size()) + ")");
  }
  flushBuffer();
  auto in_offset = static_cast<off_t>(offset);
  std::uint64_t left = count;
  while (left > 0) {
    const auto chunk = static_cast<std::size_t>(std::min<std::uint64_t>(left, 1ull << 30));
    ssize_t copied = ::copy_file_range(in, &in_offset, fd_, nullptr, chunk, 0);
    if (copied < 0 && errno == EINTR) continue;
    if (copied <= 0) break;  // refused (EXDEV, ENOSYS, EINVAL, ...) or at the end: stream what is left
    left -= static_cast<std::uint64_t>(copied);
  }
  position_ += count - left;
  // What the kernel did not copy goes through a buffer.
  streamRange(source, static_cast<std::uint64_t>(in_offset), left, *this);
  return true;
}

void AtomicFileSink::flushBuffer() {
  writeAll(fd_, buffer_.data(), buffer_.size(), temp_path_);
  buffer_.clear();
}

void AtomicFileSink::commit() {
  flushBuffer();
  if (::fsync(fd_) != 0) throw OutputError("cannot sync " + temp_path_ + ": " + errnoText());
  ::close(fd_);
  fd_ = -1;
  if (::rename(temp_path_.c_str(), target_.c_str()) != 0) {
    throw OutputError("cannot rename the output into place: " + errnoText());
  }
  committed_ = true;
}

namespace {

// Writes straight into a character device, as `cp` does: a device has no
// temporary twin to rename onto it.
class DeviceSink : public OutputSink {
 public:
  DeviceSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~DeviceSink() override { ::close(fd_); }
  DeviceSink(const DeviceSink&) = delete;
  DeviceSink& operator=(const DeviceSink&) = delete;

  void write(const void* data, std::size_t count) override {
    writeAll(fd_, static_cast<const char*>(data), count, path_);
    position_ += count;
  }
  std::uint64_t position() const override { return position_; }
  void commit() override {}

 private:
  int fd_;
  std::string path_;
  std::uint64_t position_ = 0;
};

// Symbolic links followed before we give up, as the kernel's own limit (ELOOP).
constexpr int kMaxLinksFollowed = 40;

// The path `path` writes to: symbolic links followed, a dangling one's
// target included (open(2) would create it); `st` gets what is there, and
// the result is false when nothing is.
bool resolveOutput(std::string& path, struct stat& st) {
  for (int hops = 0; hops <= kMaxLinksFollowed; ++hops) {
    if (::lstat(path.c_str(), &st) != 0) {
      if (errno == ENOENT) return false;
      throw OutputError("cannot stat " + path + ": " + errnoText());
    }
    if (!S_ISLNK(st.st_mode)) return true;
    std::error_code ec;
    const std::filesystem::path target = std::filesystem::read_symlink(path, ec);
    if (ec) throw OutputError("cannot read the symbolic link " + path + ": " + ec.message());
    path = target.is_absolute() ? target.string() : (std::filesystem::path(path).parent_path() / target).string();
  }
  throw OutputError("too many levels of symbolic links");
}

const char* fileKind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

}  // namespace

std::unique_ptr<OutputSink> openOutputFile(const std::string& path) {
  std::string target = path;
  struct stat st{};
  if (!resolveOutput(target, st)) return std::make_unique<AtomicFileSink>(target);
  if (S_ISREG(st.st_mode)) {
    return std::make_unique<AtomicFileSink>(target, st.st_mode, std::pair<unsigned, unsigned>{st.st_uid, st.st_gid});
  }
  if (S_ISCHR(st.st_mode)) {
    int fd = ::open(target.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) throw OutputError("cannot open " + target + ": " + errnoText());
    return std::make_unique<DeviceSink>(fd, target);
  }
  throw OutputError(std::string("is ") + fileKind(st.st_mode) +
                    ": qatfold writes regular files (replaced atomically) and character devices only");
}

}  // namespace qatfold
