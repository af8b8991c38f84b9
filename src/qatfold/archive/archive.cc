#include "qatfold/archive/archive.h"

#include "qatfold/error.h"

namespace qatfold {

std::unique_ptr<Archive> Archive::open(const std::string& path, const ReadLimits& limits) {
  return std::make_unique<Archive>(std::make_unique<ZipReader>(openFileSource(path), limits));
}

std::unique_ptr<Archive> Archive::fromBytes(std::string bytes, std::string label, const ReadLimits& limits) {
  return std::make_unique<Archive>(
      std::make_unique<ZipReader>(makeMemorySource(std::move(bytes), std::move(label)), limits));
}

namespace {

// Record names are looked up, never used as file system paths; still, only
// plain relative paths are admitted, so nothing downstream has to wonder.
void checkRecordPath(const std::string& name, const std::string& path) {
  if (!name.empty() && name.back() == '/') {
    throw Error("record '" + name + "' is a directory entry; PT2 archives hold only files");
  }
  if (path.empty() || path.front() == '/') throw Error("record name '" + name + "' is not a plain relative path");
  for (unsigned char c : path) {
    if (c < 0x20 || c == 0x7f || c == '\\') {
      throw Error("record name '" + name + "' holds a control character or backslash");
    }
  }
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string_view part(path.data() + start, end - start);
    if (part.empty() || part == "." || part == "..") {
      throw Error("record name '" + name + "' is not a plain relative path");
    }
    start = end + 1;
  }
}

}  // namespace

Archive::Archive(std::unique_ptr<ZipReader> zip) : zip_(std::move(zip)) {
  const auto& entries = zip_->entries();
  if (entries.empty()) throw Error("archive has no records");
  const std::string& first = entries.front().name;
  auto slash = first.find('/');
  if (slash == std::string::npos || slash == 0) {
    throw Error("record '" + first + "' is not inside a root folder, so this is not a PT2 archive");
  }
  root_ = first.substr(0, slash);
  if (root_ == "." || root_ == "..") throw Error("record name '" + first + "' is not a plain relative path");
  const std::string prefix = root_ + "/";
  paths_.reserve(entries.size());
  for (const ZipEntry& entry : entries) {
    if (entry.name.compare(0, prefix.size(), prefix) != 0) {
      throw Error("record '" + entry.name + "' is outside the archive's root folder '" + root_ + "'");
    }
    std::string path = entry.name.substr(prefix.size());
    checkRecordPath(entry.name, path);
    paths_.push_back(std::move(path));
  }
}

const ZipEntry* Archive::tryEntry(std::string_view path) const {
  return zip_->tryFind(root_ + "/" + std::string(path));
}

const ZipEntry& Archive::entry(std::string_view path) const {
  const ZipEntry* found = tryEntry(path);
  if (found == nullptr) throw Error("archive has no record '" + std::string(path) + "'");
  return *found;
}

std::string Archive::read(std::string_view path, std::size_t spare) const { return zip_->read(entry(path), spare); }

void ArchiveEdit::put(std::string path, std::string bytes) {
  putProduced(std::move(path), [bytes = std::make_shared<const std::string>(std::move(bytes))](const RecordEmit& emit) {
    emit(*bytes);
  });
}

void ArchiveEdit::putProduced(std::string path, RecordProducer producer) {
  removals_.erase(path);
  if (puts_.find(path) == puts_.end()) put_order_.push_back(path);
  puts_[path] = std::move(producer);
}

void ArchiveEdit::remove(const std::string& path) {
  if (puts_.erase(path) != 0) std::erase(put_order_, path);
  removals_[path] = true;
}

const RecordProducer* ArchiveEdit::replacement(const std::string& path) const {
  auto it = puts_.find(path);
  return it == puts_.end() ? nullptr : &it->second;
}

std::vector<std::string> ArchiveEdit::additions(const Archive& archive) const {
  std::vector<std::string> added;
  for (const std::string& path : put_order_) {
    if (!archive.has(path)) added.push_back(path);
  }
  return added;
}

void copyArchive(const Archive& archive, ByteSink& sink) {
  const ByteSource& source = archive.zip().source();
  if (!sink.copyRange(source, 0, source.size())) streamRange(source, 0, source.size(), sink);
}

void writeArchive(const Archive& archive, const ArchiveEdit& edit, ByteSink& sink) {
  ZipWriter writer(sink);
  const std::string prefix = archive.root() + "/";
  const auto& entries = archive.zip().entries();
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::string& path = archive.paths()[i];
    if (edit.removed(path)) continue;
    if (const RecordProducer* producer = edit.replacement(path)) {
      writer.addProduced(entries[i].name, *producer);
    } else {
      writer.copyFrom(archive.zip(), entries[i], entries[i].name);
    }
  }
  for (const std::string& path : edit.additions(archive)) {
    writer.addProduced(prefix + path, *edit.replacement(path));
  }
  writer.finish();
}

}  // namespace qatfold
