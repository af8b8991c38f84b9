// The exported program of a PT2 archive: the parsed model JSON plus the
// payload configs of its weights and constants, with storages bound to the
// archive's records (read lazily).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "qatfold/program/payload.h"
#include "qatfold/program/schema.h"

namespace qatfold {

class Archive;

// Where a payload lives: data/weights/ (state_dict) or data/constants/.
enum class PayloadSection { kWeights, kConstants };

// Record folder of a section: "data/weights/" or "data/constants/".
const char* sectionDirectory(PayloadSection section);

// One state_dict or constants entry.
struct Payload {
  PayloadSection section = PayloadSection::kWeights;
  std::string fqn;
  program::PayloadMeta meta;
  std::shared_ptr<const Storage> storage;  // null for pickled payloads

  // A typed view; throws Error for pickled payloads.
  TensorView view() const;
};

struct Program {
  std::string model_name;  // "model" for models/model.json
  program::ExportedProgram exported;
  program::PayloadConfig weights_config;
  program::PayloadConfig constants_config;
  std::vector<std::shared_ptr<Payload>> weights;    // config order
  std::vector<std::shared_ptr<Payload>> constants;  // config order

  // Loads the only program of `archive`: parses its JSON records and checks
  // every raw payload against its record size. Throws Error on malformed input.
  static std::unique_ptr<Program> load(const Archive& archive);
  // A program held in memory (a front end built `exported` from its own
  // objects) and its payloads, with storages bound to memory already.
  static std::unique_ptr<Program> fromMemory(program::ExportedProgram exported,
                                             std::vector<std::shared_ptr<Payload>> weights,
                                             std::vector<std::shared_ptr<Payload>> constants);

  // The payload of `fqn` in `section`, or nullptr.
  std::shared_ptr<Payload> findPayload(PayloadSection section, const std::string& fqn) const;

 private:
  void indexPayloads();
  std::unordered_map<std::string, std::shared_ptr<Payload>> weights_by_fqn_;
  std::unordered_map<std::string, std::shared_ptr<Payload>> constants_by_fqn_;
};

// Record paths of the parts of a model, per torch's pt2_archive constants.
std::string modelJsonPath(const std::string& model_name);
std::string weightsConfigPath(const std::string& model_name);
std::string constantsConfigPath(const std::string& model_name);

}  // namespace qatfold

namespace qatfold {
// Reads and validates a JSON record under the archive's limits; errors name the record.
std::shared_ptr<const JsonText> readJsonRecord(const Archive& archive, const std::string& path);
}  // namespace qatfold
