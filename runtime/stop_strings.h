// Stop strings over streamed text: generation ends before the first occurrence of any of them,
// and text that could still turn out to be the start of one is held back, so a stream never
// shows part of a stop string.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kiln::runtime {

class StopStrings {
 public:
  explicit StopStrings(std::vector<std::string> stops);

  // Adds generated text. *out gets the text that may be released now. Returns true when a stop
  // string is complete: *out then ends just before it, and nothing more should be generated.
  bool push(std::string_view text, std::string* out);
  // At the end of generation: whatever is held back, plus `tail` (cut at a stop string if one
  // completes).
  std::string flush(std::string_view tail);

 private:
  std::vector<std::string> stops_;
  std::string held_;
};

}  // namespace kiln::runtime
