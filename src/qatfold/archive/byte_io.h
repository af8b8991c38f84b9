// Random-access byte sources and append-only sinks: a file or memory.
//
// Archives are read through a ByteSource so that opening one touches only the
// central directory, and weights are read (or streamed) on demand.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace qatfold {

// Read-only random access to a sequence of bytes.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Total number of bytes.
  virtual std::uint64_t size() const = 0;
  // Reads exactly `count` bytes at `offset`; throws Error past the end.
  virtual void readAt(std::uint64_t offset, void* out, std::size_t count) const = 0;
  // A human name for messages (the path, or "<memory>").
  virtual const std::string& name() const = 0;
  // The open file behind the source, or -1 (memory): lets a sink copy
  // ranges of it inside the kernel.
  virtual int fileDescriptor() const { return -1; }
};

// Opens a file for reading; throws Error naming the path on failure.
std::unique_ptr<ByteSource> openFileSource(const std::string& path);
// Wraps bytes held in memory (the source owns them).
std::unique_ptr<ByteSource> makeMemorySource(std::string bytes, std::string name = "<memory>");

// Append-only output.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual void write(const void* data, std::size_t count) = 0;
  // Bytes written so far.
  virtual std::uint64_t position() const = 0;
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  // Appends `count` bytes of `source` from `offset` without passing them
  // through user space where it can (copy_file_range); returns false, having
  // written nothing, where it cannot, and the caller streams them instead.
  virtual bool copyRange(const ByteSource& source, std::uint64_t offset, std::uint64_t count) {
    (void)source, (void)offset, (void)count;
    return false;
  }
};

// Appends `count` bytes of `source` from `offset` to `sink` through a 1 MiB
// buffer: the portable way, where ByteSink::copyRange cannot.
void streamRange(const ByteSource& source, std::uint64_t offset, std::uint64_t count, ByteSink& sink);

// Collects output in a string.
class StringSink : public ByteSink {
 public:
  void write(const void* data, std::size_t count) override;
  std::uint64_t position() const override { return bytes_.size(); }
  std::string& bytes() { return bytes_; }

 private:
  std::string bytes_;
};

// An output that becomes visible only when commit() is called.
class OutputSink : public ByteSink {
 public:
  // Makes what was written the output; a sink destroyed without it leaves
  // the target as it was (a device has taken the bytes already).
  virtual void commit() = 0;
};

// Opens `path` for writing an output, as `cp` treats a destination:
//  - a symbolic link is followed, and the file it names is written (a
//    dangling link's target is created); the link stays a link;
//  - a regular file, or no file, is written atomically (AtomicFileSink); an
//    existing file keeps its permission bits and, where we may, its owner;
//    other hard links to it keep the old contents (the name gets a new file);
//  - a character device (/dev/null, a tape, a terminal) is written straight
//    through, as `cp` does, and stays a device;
//  - anything else (a directory, a FIFO, a socket, a block device) is
//    refused with OutputError, before a byte is written.
std::unique_ptr<OutputSink> openOutputFile(const std::string& path);

// Writes to a temporary file next to `target` and renames it onto `target`
// only in commit(); if commit() is never reached the temporary file is
// removed, so a failed or interrupted write never leaves a partial target.
// `mode`, where given, becomes the new file's permission bits (an existing
// target's, kept); `owner` likewise (uid, gid), where we may set it.
class AtomicFileSink : public OutputSink {
 public:
  explicit AtomicFileSink(const std::string& target);
  AtomicFileSink(const std::string& target, unsigned mode, std::pair<unsigned, unsigned> owner);
  ~AtomicFileSink() override;
  AtomicFileSink(const AtomicFileSink&) = delete;
  AtomicFileSink& operator=(const AtomicFileSink&) = delete;

  void write(const void* data, std::size_t count) override;
  std::uint64_t position() const override { return position_; }
  // copy_file_range from a file source; where the kernel refuses (another
  // file system, an old kernel), read and write for what is left.
  bool copyRange(const ByteSource& source, std::uint64_t offset, std::uint64_t count) override;
  // Flushes, syncs and renames the temporary file onto the target.
  void commit() override;

 private:
  void flushBuffer();

  std::string target_;
  std::string temp_path_;
  int fd_ = -1;
  std::uint64_t position_ = 0;
  std::string buffer_;
  bool committed_ = false;
};

}  // namespace qatfold
