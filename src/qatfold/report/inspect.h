// What is in an archive, at a glance (`qatfold inspect`, `qatfold.inspect`).
#pragma once

#include <string>

#include "qatfold/archive/archive.h"
#include "qatfold/graph/graph.h"
#include "qatfold/program/json.h"

namespace qatfold::report {

// Versions, op histogram, parameters/buffers/constants, user inputs/outputs.
Json inspectReport(const Archive& archive, const graph::Graph& graph);
// The same report as aligned text.
std::string formatInspectReport(const Json& report);

}  // namespace qatfold::report
