// graft::Error — the one error type. It carries where the fault is (recipe file:line:col,
// key path, plugin, library, checkpoint) and whether the user caused it (exit code 2) or
// not (exit code 1). The CLI prints what() as a single line.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace graft {

/// A position in a source: a recipe file (line and column are 1-based; 0 = unknown),
/// or a pseudo-source such as "--set model.lr=0.1".
struct SourceLoc {
  std::string file;
  int line = 0;
  int col = 0;

  bool known() const { return !file.empty(); }
  /// "file:line:col", "file" when the position is unknown, "" when nothing is known.
  std::string str() const;
};

class Error : public std::runtime_error {
 public:
  enum class Kind {
    usage,    ///< the user's recipe, command line or input is wrong: exit code 2
    runtime,  ///< anything else: exit code 1
  };

  /// `message` is the bare text; `where` is prefixed to it in what().
  Error(Kind kind, std::string message, SourceLoc where = {});

  static Error usage(std::string message, SourceLoc where = {}) {
    return Error(Kind::usage, std::move(message), std::move(where));
  }
  static Error runtime(std::string message, SourceLoc where = {}) {
    return Error(Kind::runtime, std::move(message), std::move(where));
  }

  Kind kind() const { return kind_; }
  int exit_code() const { return kind_ == Kind::usage ? 2 : 1; }
  const SourceLoc& where() const { return where_; }
  const std::string& message() const { return message_; }

 private:
  Kind kind_;
  std::string message_;
  SourceLoc where_;
};

/// The closest candidate to `word` by edit distance, or "" when none is close enough to be
/// a plausible typo. Used for every "did you mean" in graft.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace graft
