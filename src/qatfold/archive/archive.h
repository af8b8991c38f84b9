// A PT2 archive: zip records under one root folder, addressed by their path
// inside that folder ("models/model.json", "data/weights/weight_0").
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qatfold/archive/zip.h"

namespace qatfold {

class Archive {
 public:
  // Opens the archive at `path`; reads only the zip directories.
  static std::unique_ptr<Archive> open(const std::string& path, const ReadLimits& limits = {});
  // Opens an archive held in memory (`label` names it in messages).
  static std::unique_ptr<Archive> fromBytes(std::string bytes, std::string label = "<memory>",
                                            const ReadLimits& limits = {});

  explicit Archive(std::unique_ptr<ZipReader> zip);

  // The root folder every record lives under (PyTorch uses the file stem).
  const std::string& root() const { return root_; }
  // The record paths below the root, in archive order.
  const std::vector<std::string>& paths() const { return paths_; }
  bool has(std::string_view path) const { return tryEntry(path) != nullptr; }
  const ZipEntry* tryEntry(std::string_view path) const;
  // Throws Error("archive has no record ...") if absent.
  const ZipEntry& entry(std::string_view path) const;
  // Reads a whole record (with room for `spare` more bytes, see ZipReader::read).
  std::string read(std::string_view path, std::size_t spare = 0) const;
  const ZipReader& zip() const { return *zip_; }
  const ReadLimits& limits() const { return zip_->limits(); }
  // The file name (or label) for messages.
  const std::string& label() const { return zip_->source().name(); }

 private:
  std::unique_ptr<ZipReader> zip_;
  std::string root_;
  std::vector<std::string> paths_;
};

// Writes a record's bytes through `emit`, in pieces. It must write the same
// bytes each time it is called.
using RecordEmit = std::function<void(std::string_view)>;
using RecordProducer = std::function<void(const RecordEmit& emit)>;

// The changes to make when writing an archive out: records to replace or add
// (new bytes, or a producer that writes them) and records to drop.
// Everything else is copied verbatim.
class ArchiveEdit {
 public:
  void put(std::string path, std::string bytes);
  // A record too large to hold twice: written by `producer` while the
  // archive is written (see ZipWriter::addProduced).
  void putProduced(std::string path, RecordProducer producer);
  void remove(const std::string& path);
  bool empty() const { return puts_.empty() && removals_.empty(); }
  // The new content of `path`, or null.
  const RecordProducer* replacement(const std::string& path) const;
  bool removed(const std::string& path) const { return removals_.count(path) != 0; }
  // Paths put that were not in `archive`, in the order they were put.
  std::vector<std::string> additions(const Archive& archive) const;

 private:
  std::map<std::string, RecordProducer> puts_;
  std::vector<std::string> put_order_;
  std::map<std::string, bool> removals_;
};

// Writes the bytes `archive` was read from to `sink`, unchanged (what a fold
// writes when it changed nothing): copied by the kernel where it can, else in
// 1 MiB chunks.
void copyArchive(const Archive& archive, ByteSink& sink);

// Writes `archive` with `edit` applied to `sink`: records keep their order,
// replaced records take their original's place, additions come last.
void writeArchive(const Archive& archive, const ArchiveEdit& edit, ByteSink& sink);

}  // namespace qatfold
