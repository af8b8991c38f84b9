// What the text graph's printer and parser agree on (graph/text.h): the
// target prefix the text drops, and the dtype names it writes.
#pragma once

#include <optional>
#include <string_view>

#include "qatfold/program/schema.h"

namespace qatfold::graph::text_syntax {

inline constexpr std::string_view kOpsPrefix = "torch.ops.";

inline constexpr program::ScalarType kScalarTypes[] = {
    program::ScalarType::kUInt8,    program::ScalarType::kInt8,    program::ScalarType::kInt16,
    program::ScalarType::kInt32,    program::ScalarType::kInt64,   program::ScalarType::kFloat16,
    program::ScalarType::kFloat32,  program::ScalarType::kFloat64, program::ScalarType::kBool,
    program::ScalarType::kBFloat16, program::ScalarType::kUInt16,  program::ScalarType::kUInt32,
    program::ScalarType::kUInt64};

// The dtype the text calls `name` ("int8"), or nullopt.
inline std::optional<program::ScalarType> scalarTypeNamed(std::string_view name) {
  for (program::ScalarType type : kScalarTypes) {
    if (program::scalarTypeName(type) == name) return type;
  }
  return std::nullopt;
}

inline bool isFloatingType(program::ScalarType type) {
  using program::ScalarType;
  return type == ScalarType::kFloat16 || type == ScalarType::kFloat32 || type == ScalarType::kFloat64 ||
         type == ScalarType::kBFloat16;
}

}  // namespace qatfold::graph::text_syntax
