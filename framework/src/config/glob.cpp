#include "graft/glob.h"

namespace graft {

bool glob_match(const std::string& pattern, const std::string& text) {
  std::size_t p = 0, t = 0, star = std::string::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '[') {
      const auto close = pattern.find(']', p + 1);
      if (close != std::string::npos) {
        const bool negate = p + 1 < close && (pattern[p + 1] == '!' || pattern[p + 1] == '^');
        bool in = false;
        for (std::size_t k = p + 1 + (negate ? 1 : 0); k < close; ++k) {
          if (k + 2 < close && pattern[k + 1] == '-') {
            in = in || (text[t] >= pattern[k] && text[t] <= pattern[k + 2]);
            k += 2;
          } else {
            in = in || text[t] == pattern[k];
          }
        }
        if (in != negate) {
          p = close + 1;
          ++t;
          continue;
        }
      }
    } else if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
      continue;
    }
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
      continue;
    }
    if (star != std::string::npos) {
      p = star + 1;
      t = ++mark;
      continue;
    }
    return false;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace graft
