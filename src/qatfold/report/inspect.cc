#include "qatfold/report/inspect.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

namespace qatfold::report {
namespace {

using program::InputKind;

std::string shortTarget(const std::string& target) {
  const std::string prefix = "torch.ops.";
  return target.rfind(prefix, 0) == 0 ? target.substr(prefix.size()) : target;
}

Json describeTensor(const std::string& name, const program::TensorMeta* meta) {
  Json entry = Json{{"name", name}};
  if (meta != nullptr) {
    entry["dtype"] = program::scalarTypeName(meta->dtype);
    // A symbolic dimension by its symbol: [2, 3, 16, 16], ["s77", 8, 64].
    Json shape = Json::array();
    for (std::size_t d = 0; d < meta->rank(); ++d) {
      const std::optional<std::int64_t> size = meta->size(d);
      shape.push_back(size ? Json(*size) : Json(meta->sizeText(d)));
    }
    entry["shape"] = std::move(shape);
  }
  return entry;
}

std::string humanBytes(std::uint64_t bytes) {
  char buf[32];
  if (bytes < 1024) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else if (bytes < (1u << 20)) std::snprintf(buf, sizeof buf, "%.1f KiB", bytes / 1024.0);
  else if (bytes < (1u << 30)) std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / 1048576.0);
  else std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / 1073741824.0);
  return buf;
}

}  // namespace

Json inspectReport(const Archive& archive, const graph::Graph& graph) {
  const Program& program = graph.source();
  Json report = Json::object();
  report["file"] = archive.label();
  report["model"] = program.model_name;
  report["torch_version"] = program.exported.torch_version;
  report["schema_version"] =
      std::to_string(program.exported.schema_major) + "." + std::to_string(program.exported.schema_minor);
  report["records"] = archive.paths().size();
  Json opsets = Json::object();
  for (const auto& [name, version] : program.exported.opset_version) opsets[name] = version;
  report["opset_version"] = std::move(opsets);

  std::map<std::string, std::size_t> histogram;
  std::size_t node_count = 0;
  for (const graph::Node* node : graph.nodes()) {
    ++histogram[shortTarget(node->target())];
    ++node_count;
  }
  std::vector<std::pair<std::string, std::size_t>> ops(histogram.begin(), histogram.end());
  std::stable_sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  Json op_json = Json::array();
  for (const auto& [target, count] : ops) op_json.push_back(Json{{"op", target}, {"count", count}});
  report["nodes"] = node_count;
  report["ops"] = std::move(op_json);

  struct Tally {
    std::size_t count = 0;
    std::uint64_t bytes = 0;
  };
  std::map<InputKind, Tally> tallies;
  Json inputs = Json::array();
  for (const graph::Value* placeholder : graph.placeholders()) {
    if (placeholder->isConstantTensor()) {
      Tally& tally = tallies[placeholder->inputKind()];
      ++tally.count;
      const auto& meta = placeholder->payload()->meta.tensor_meta;
      if (meta && !meta->symbolic)
        tally.bytes += static_cast<std::uint64_t>(meta->numel()) * program::elementSize(meta->dtype);
    } else if (placeholder->inputKind() == InputKind::kUserInput) {
      inputs.push_back(describeTensor(placeholder->name(), placeholder->meta()));
    }
  }
  auto tally_json = [&](InputKind kind) {
    return Json{{"count", tallies[kind].count}, {"bytes", tallies[kind].bytes}};
  };
  report["parameters"] = tally_json(InputKind::kParameter);
  report["buffers"] = tally_json(InputKind::kBuffer);
  report["constants"] = tally_json(InputKind::kTensorConstant);
  report["inputs"] = std::move(inputs);
  Json outputs = Json::array();
  for (const graph::Value* value : graph.outputs()) {
    if (value != nullptr) outputs.push_back(describeTensor(value->name(), value->meta()));
  }
  report["outputs"] = std::move(outputs);
  return report;
}

std::string formatInspectReport(const Json& report) {
  std::ostringstream out;
  out << report["file"].get<std::string>() << "\n";
  out << "  program     " << report["model"].get<std::string>() << " (torch "
      << report["torch_version"].get<std::string>() << ", schema " << report["schema_version"].get<std::string>()
      << ", " << report["records"].get<std::size_t>() << " records)\n";
  auto tensor_line = [](const Json& entry) {
    std::string line = entry["name"].get<std::string>();
    if (entry.contains("dtype")) {
      line += ": " + entry["dtype"].get<std::string>();
      line += "[";
      for (std::size_t i = 0; i < entry["shape"].size(); ++i) {
        if (i) line += ", ";
        const Json& size = entry["shape"][i];
        line += size.is_string() ? size.get<std::string>() : std::to_string(size.get<std::int64_t>());
      }
      line += "]";
    }
    return line;
  };
  for (const char* key : {"inputs", "outputs"}) {
    out << "  " << key << (std::string(key) == "inputs" ? "      " : "     ");
    bool first = true;
    for (const Json& entry : report[key]) {
      out << (first ? "" : ", ") << tensor_line(entry);
      first = false;
    }
    out << (first ? "(none)" : "") << "\n";
  }
  for (const char* key : {"parameters", "buffers", "constants"}) {
    char line[128];
    std::snprintf(line, sizeof line, "  %-12s%zu (%s)\n", key, report[key]["count"].get<std::size_t>(),
                  humanBytes(report[key]["bytes"].get<std::uint64_t>()).c_str());
    out << line;
  }
  out << "  ops         " << report["nodes"].get<std::size_t>() << " nodes\n";
  for (const Json& op : report["ops"]) {
    char line[256];
    std::snprintf(line, sizeof line, "    %5zu  %s\n", op["count"].get<std::size_t>(),
                  op["op"].get<std::string>().c_str());
    out << line;
  }
  return out.str();
}

}  // namespace qatfold::report
