// The one error type of the library: a message a user can act on.
#pragma once

#include <stdexcept>
#include <string>

namespace qatfold {

// What went wrong, phrased for the user; the CLI prefixes it with the file name.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An error writing the output (disk full, no permission), as opposed to a
// problem with the input; the CLI names the output file for these.
class OutputError : public Error {
 public:
  using Error::Error;
};

}  // namespace qatfold
