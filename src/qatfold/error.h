// The one error type of the library: a message a user can act on.
#pragma once

#include <stdexcept>
#include <string>

namespace qatfold {

// The read limit (archive/limits.h) an error ran into, so that a front end
// can say how to raise it in its own terms (the CLI names its option).
enum class ExceededLimit { kNone, kRecords, kInflatedBytes, kCompressionRatio, kJsonBytes, kJsonDepth };

// What went wrong, phrased for the user; the CLI prefixes it with the file name.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, ExceededLimit limit = ExceededLimit::kNone)
      : std::runtime_error(what), limit_(limit) {}
  ExceededLimit limit() const { return limit_; }
  // The same error with `context` ("models/model.json: ") before its message.
  Error within(const std::string& context) const { return Error(context + what(), limit_); }

 private:
  ExceededLimit limit_;
};

// An error writing the output (disk full, no permission), as opposed to a
// problem with the input; the CLI names the output file for these.
class OutputError : public Error {
 public:
  using Error::Error;
};

}  // namespace qatfold
