#include "qatfold/writer/pt2_writer.h"

#include <map>
#include <set>

#include "qatfold/error.h"

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
