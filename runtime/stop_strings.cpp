#include "runtime/stop_strings.h"

#include <algorithm>

namespace kiln::runtime {

StopStrings::StopStrings(std::vector<std::string> stops) {
  for (std::string& s : stops)
    if (!s.empty()) stops_.push_back(std::move(s));
}

bool StopStrings::push(std::string_view text, std::string* out) {
  out->clear();
  held_ += text;
  if (stops_.empty()) {
    out->swap(held_);
    return false;
  }
  // Text held back never contains a whole stop string, so a new match ends in the new text.
  size_t first = std::string::npos;
  for (const std::string& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    out->assign(held_, 0, first);
    held_.clear();
    return true;
  }
  // Hold back the longest tail of the text that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const std::string& s : stops_)
    for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k)
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        keep = k;
        break;
      }
  out->assign(held_, 0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return false;
}

std::string StopStrings::flush(std::string_view tail) {
  std::string out;
  push(tail, &out);
  out += held_;
  held_.clear();
  return out;
}

}  // namespace kiln::runtime
