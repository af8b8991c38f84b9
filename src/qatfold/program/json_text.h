// A JSON record's text, validated once and then read in place.
//
// simdjson (Debian's libsimdjson-dev) checks the whole text up front:
// UTF-8, structure, numbers, literals and nesting depth. Readers then walk it
// with simdjson's On-Demand API and keep slices of it instead of building a
// document tree (see bench/json_readers for the measurements behind the
// choice). The buffer carries the padding simdjson reads past the end.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace qatfold {

class JsonText {
 public:
  // Validates `text`. Bare NaN / Infinity / -Infinity tokens (Python's
  // json default) are first rewritten to torch's string encoding. Throws
  // Error("malformed JSON: ...") or, past `max_depth` levels of nesting,
  // Error naming the limit and its option.
  // `text` is taken over; with kPadding bytes of spare capacity it is not copied.
  static std::shared_ptr<const JsonText> parse(std::string text, std::size_t max_depth = 512);
  // The bytes simdjson may read past the end (SIMDJSON_PADDING).
  static constexpr std::size_t kPadding = 64;

  std::string_view view() const { return {buffer_.data(), size_}; }
  const char* data() const { return buffer_.data(); }
  std::size_t size() const { return size_; }
  // Bytes readable from data(): size() plus simdjson's padding.
  std::size_t capacity() const { return buffer_.size(); }
  // Offset of `slice` (a view into this text) from the start.
  std::size_t offsetOf(std::string_view slice) const { return static_cast<std::size_t>(slice.data() - buffer_.data()); }

 private:
  JsonText() = default;
  std::string buffer_;
  std::size_t size_ = 0;
};

}  // namespace qatfold
