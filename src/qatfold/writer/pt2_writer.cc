#include "qatfold/writer/pt2_writer.h"

#include <map>
#include <set>

#include "qatfold/archive/zip.h"
#include "qatfold/error.h"
#include "qatfold/graph/text.h"

namespace qatfold {
namespace {

// The index N of "<prefix>N", or -1.
long long recordIndex(const std::string& name, const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size()) return -1;
  long long index = 0;
  for (std::size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || index > (1LL << 40)) return -1;
    index = index * 10 + (name[i] - '0');
  }
  return index;
}

// Rebuilds one payload config, naming records for new storages and
// dropping records no entry refers to any more.
void planSection(const Archive& archive, const program::PayloadConfig& original,
                 const std::vector<std::shared_ptr<Payload>>& payloads, PayloadSection section,
                 const std::string& config_path, ArchiveEdit& edit) {
  const std::string directory = sectionDirectory(section);
  const std::string prefix = section == PayloadSection::kWeights ? "weight_" : "tensor_";
  long long next_index = 0;
  for (const std::string& path : archive.paths()) {
    if (path.rfind(directory, 0) == 0) {
      next_index = std::max(next_index, recordIndex(path.substr(directory.size()), prefix) + 1);
    }
  }
  program::PayloadConfig config;
  config.members = original.members;
  config.text = original.text;
  std::map<const Storage*, std::string> new_records;
  std::set<std::string> referenced;
  for (const auto& payload : payloads) {
    program::PayloadMeta meta = payload->meta;
    if (payload->storage && payload->storage->isNew()) {
      auto [it, inserted] = new_records.emplace(payload->storage.get(), "");
      if (inserted) {
        it->second = prefix + std::to_string(next_index++);
        edit.put(directory + it->second, std::string(payload->storage->data()));
      }
      meta.path_name = it->second;
    } else if (payload->storage) {
      meta.path_name = payload->storage->recordPath().substr(directory.size());
    }
    referenced.insert(meta.path_name);
    config.entries.emplace_back(payload->fqn, std::move(meta));
  }
  for (const auto& [fqn, meta] : original.entries) {
    if (referenced.count(meta.path_name) == 0) edit.remove(directory + meta.path_name);
  }
  edit.put(config_path, config.dump());
}

}  // namespace

ArchiveEdit planProgramEdit(const Archive& archive, const graph::Graph& graph) {
  const Program& source = graph.source();
  ArchiveEdit edit;
  // Written while the archive is written, in pieces: the model JSON is the
  // largest thing a fold makes, and is never held whole.
  auto exported = std::make_shared<const program::ExportedProgram>(graph.toExportedProgram());
  edit.putProduced(modelJsonPath(source.model_name), [exported](const RecordEmit& emit) { exported->write(emit); });
  planSection(archive, source.weights_config, graph.weights(), PayloadSection::kWeights,
              weightsConfigPath(source.model_name), edit);
  planSection(archive, source.constants_config, graph.constants(), PayloadSection::kConstants,
              constantsConfigPath(source.model_name), edit);
  return edit;
}

void writeProgram(const Archive& archive, const graph::Graph& graph, ByteSink& sink) {
  writeArchive(archive, planProgramEdit(archive, graph), sink);
}

void writeProgramFile(const Archive& archive, const graph::Graph& graph, const std::string& path) {
  ArchiveEdit edit = planProgramEdit(archive, graph);
  std::unique_ptr<OutputSink> sink = openOutputFile(path);
  writeArchive(archive, edit, *sink);
  sink->commit();
}

std::unique_ptr<Archive> pt2Layout(const std::string& name) {
  StringSink sink;
  ZipWriter zip(sink);
  const std::string root = name + "/";
  zip.addStored(root + "archive_format", "pt2");
  zip.addStored(root + "archive_version", "0");
  zip.addStored(root + ".data/version", "6\n");
  zip.addStored(root + "byteorder", "little");
  zip.addStored(root + "data/sample_inputs/model.pt", "");
  zip.finish();
  return Archive::fromBytes(std::move(sink.bytes()), name);
}

void writeNewProgram(const graph::Graph& graph, const std::string& name, ByteSink& sink) {
  const std::unique_ptr<Archive> layout = pt2Layout(name);
  writeProgram(*layout, graph, sink);
}

std::string archiveFromText(std::string_view text, const std::string& name,
                            const std::optional<std::string>& fill_elided) {
  const std::unique_ptr<Program> program = graph::programFromText(text, fill_elided);
  const graph::Graph graph(*program);
  StringSink sink;
  writeNewProgram(graph, name, sink);
  return std::move(sink.bytes());
}

void writeFoldResult(const Archive& archive, const graph::Graph& graph, bool changed, ByteSink& sink) {
  if (changed) {
    writeProgram(archive, graph, sink);
  } else {
    copyArchive(archive, sink);
  }
}

void writeFoldResultFile(const Archive& archive, const graph::Graph& graph, bool changed, const std::string& path) {
  if (changed) {
    writeProgramFile(archive, graph, path);
    return;
  }
  std::unique_ptr<OutputSink> sink = openOutputFile(path);
  copyArchive(archive, *sink);
  sink->commit();
}

}  // namespace qatfold
