#include "qatfold/program/program.h"

#include "qatfold/archive/archive.h"
#include "qatfold/error.h"

namespace qatfold {
namespace {

constexpr const char* kModelsDirectory = "models/";

program::PayloadConfig loadConfig(const Archive& archive, const std::string& path) {
  if (!archive.has(path)) throw Error("archive has no payload config '" + path + "'");
  return program::PayloadConfig::parse(readJsonRecord(archive, path), path);
}

std::vector<std::shared_ptr<Payload>> bindPayloads(const Archive& archive, const program::PayloadConfig& config,
                                                   PayloadSection section,
                                                   std::map<std::string, std::shared_ptr<Storage>>& storages) {
  std::vector<std::shared_ptr<Payload>> payloads;
  const std::string directory = sectionDirectory(section);
  for (const auto& [fqn, meta] : config.entries) {
    auto payload = std::make_shared<Payload>();
    payload->section = section;
    payload->fqn = fqn;
    payload->meta = meta;
    const std::string record = directory + meta.path_name;
    const ZipEntry* entry = archive.tryEntry(record);
    if (entry == nullptr) throw Error("payload '" + fqn + "' points to missing record '" + record + "'");
    if (!meta.use_pickle) {
      auto& storage = storages[record];
      if (!storage) storage = std::make_shared<Storage>(archive, record, entry->uncompressed_size);
      payload->storage = storage;
      try {
        (void)payload->view();  // checks that the tensor fits its record
      } catch (const Error& e) {
        throw e.within("payload '" + fqn + "' (" + record + "): ");
      }
    }
    payloads.push_back(std::move(payload));
  }
  return payloads;
}

}  // namespace

std::shared_ptr<const JsonText> readJsonRecord(const Archive& archive, const std::string& path) {
  const ReadLimits& limits = archive.limits();
  const std::uint64_t size = archive.entry(path).uncompressed_size;
  if (size > limits.max_json_bytes) {
    throw Error(path + ": JSON record of " + std::to_string(size) + " bytes, more than the limit of " +
                    std::to_string(limits.max_json_bytes),
                ExceededLimit::kJsonBytes);
  }
  try {
    return JsonText::parse(archive.read(path, JsonText::kPadding), limits.max_json_depth);
  } catch (const Error& e) {
    throw e.within(path + ": ");
  }
}

const char* sectionDirectory(PayloadSection section) {
  return section == PayloadSection::kWeights ? "data/weights/" : "data/constants/";
}

std::string modelJsonPath(const std::string& model_name) { return kModelsDirectory + model_name + ".json"; }
std::string weightsConfigPath(const std::string& model_name) {
  return "data/weights/" + model_name + "_weights_config.json";
}
std::string constantsConfigPath(const std::string& model_name) {
  return "data/constants/" + model_name + "_constants_config.json";
}

TensorView Payload::view() const {
  if (!storage || !meta.tensor_meta) throw Error("payload '" + fqn + "' is pickled; its elements are not readable");
  return TensorView(storage, *meta.tensor_meta);
}

std::unique_ptr<Program> Program::load(const Archive& archive) {
  std::vector<std::string> models;
  for (const std::string& path : archive.paths()) {
    if (path.rfind(kModelsDirectory, 0) == 0 && path.size() > 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
      models.push_back(
          path.substr(std::string(kModelsDirectory).size(), path.size() - std::string(kModelsDirectory).size() - 5));
    }
  }
  if (models.empty()) throw Error("archive has no models/*.json record, so it holds no exported program");
  if (models.size() > 1) {
    throw Error("archive holds " + std::to_string(models.size()) +
                " exported programs; qatfold handles one per archive");
  }
  auto program = std::make_unique<Program>();
  program->model_name = models.front();
  const std::string model_path = modelJsonPath(program->model_name);
  program->exported = program::ExportedProgram::parse(readJsonRecord(archive, model_path), model_path);
  program->weights_config = loadConfig(archive, weightsConfigPath(program->model_name));
  program->constants_config = loadConfig(archive, constantsConfigPath(program->model_name));
  std::map<std::string, std::shared_ptr<Storage>> storages;
  program->weights = bindPayloads(archive, program->weights_config, PayloadSection::kWeights, storages);
  program->constants = bindPayloads(archive, program->constants_config, PayloadSection::kConstants, storages);
  program->indexPayloads();
  return program;
}

std::unique_ptr<Program> Program::fromMemory(program::ExportedProgram exported,
                                             std::vector<std::shared_ptr<Payload>> weights,
                                             std::vector<std::shared_ptr<Payload>> constants) {
  auto program = std::make_unique<Program>();
  program->model_name = "model";
  program->exported = std::move(exported);
  program->weights = std::move(weights);
  program->constants = std::move(constants);
  program->indexPayloads();
  return program;
}

void Program::indexPayloads() {
  // First entry wins, as a linear search would find it.
  for (const auto& payload : weights) weights_by_fqn_.emplace(payload->fqn, payload);
  for (const auto& payload : constants) constants_by_fqn_.emplace(payload->fqn, payload);
}

std::shared_ptr<Payload> Program::findPayload(PayloadSection section, const std::string& fqn) const {
  const auto& index = section == PayloadSection::kWeights ? weights_by_fqn_ : constants_by_fqn_;
  auto it = index.find(fqn);
  return it == index.end() ? nullptr : it->second;
}

}  // namespace qatfold
