// Helpers shared by the C++ tests: fixture paths, archive surgery, files.
#pragma once

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "qatfold/archive/archive.h"
#include "qatfold/loaded_program.h"
#include "qatfold/program/json.h"

namespace qatfold::testing {

inline std::string fixturePath(const std::string& name) { return std::string(QATFOLD_FIXTURES) + "/" + name; }

// A committed fixture, loaded down to its graph.
inline LoadedProgram loadFixture(const std::string& name) { return LoadedProgram::open(fixturePath(name)); }

inline const std::vector<std::string>& allFixtures() {
  static const std::vector<std::string> names = {"float_cnn.pt2",
                                                 "qat_cadence_cnn.pt2",
                                                 "tied_weights.pt2",
                                                 "buffers.pt2",
                                                 "lifted_constants.pt2",
                                                 "tied_weights_deflated.pt2",
                                                 "qat_cadence_cnn_decomposed.pt2",
                                                 "qat_xnnpack_cnn.pt2"};
  return names;
}

inline std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline void writeFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// A fresh, empty directory under the system temp folder.
inline std::filesystem::path makeTempDir(const std::string& tag) {
  auto base = std::filesystem::temp_directory_path() /
              ("qatfold-test-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand()));
  std::filesystem::remove_all(base);
  std::filesystem::create_directories(base);
  return base;
}

// The bytes of `archive` with `edit` applied.
inline std::string rewrite(const Archive& archive, const ArchiveEdit& edit) {
  StringSink sink;
  writeArchive(archive, edit, sink);
  return sink.bytes();
}

// The fixture with its JSON record `path` changed by `mutate`.
inline std::string withJsonRecord(const std::string& fixture, const std::string& path,
                                  const std::function<void(Json&)>& mutate) {
  auto archive = Archive::open(fixturePath(fixture));
  Json json = parseJson(archive->read(path));
  mutate(json);
  ArchiveEdit edit;
  edit.put(path, dumpJson(json));
  return rewrite(*archive, edit);
}

// The fixture with its model JSON changed by `mutate`.
inline std::string withModelJson(const std::string& fixture, const std::function<void(Json&)>& mutate) {
  return withJsonRecord(fixture, "models/model.json", mutate);
}

// The fixture with its weights payload config changed by `mutate`.
inline std::string withWeightsConfig(const std::string& fixture, const std::function<void(Json&)>& mutate) {
  return withJsonRecord(fixture, "data/weights/model_weights_config.json", mutate);
}

// The fixture with the payload bytes of state_dict entry `fqn` changed by `mutate`.
inline std::string withPayloadBytes(const std::string& fixture, const std::string& fqn,
                                    const std::function<void(std::string&)>& mutate) {
  auto archive = Archive::open(fixturePath(fixture));
  Json config = parseJson(archive->read("data/weights/model_weights_config.json"));
  const std::string path = "data/weights/" + config["config"][fqn]["path_name"].get<std::string>();
  std::string bytes = archive->read(path);
  mutate(bytes);
  ArchiveEdit edit;
  edit.put(path, bytes);
  return rewrite(*archive, edit);
}

// The fixture with float32 element `index` of state_dict entry `fqn` set to `value`.
inline std::string withPayloadFloat(const std::string& fixture, const std::string& fqn, std::size_t index,
                                    float value) {
  return withPayloadBytes(fixture, fqn, [&](std::string& bytes) {
    std::memcpy(bytes.data() + index * sizeof(float), &value, sizeof(float));
  });
}

}  // namespace qatfold::testing
