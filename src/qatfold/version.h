// The one place the version is set (CMake passes QATFOLD_VERSION).
#pragma once

#ifndef QATFOLD_VERSION
#define QATFOLD_VERSION "0.0.0-dev"
#endif

namespace qatfold {
inline constexpr const char* kVersion = QATFOLD_VERSION;
}  // namespace qatfold
