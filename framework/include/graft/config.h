// graft::Config — a read-only view of one node of a recipe, as a plugin factory sees it.
// It knows where it came from (file:line:col and the dotted key path), so every error a
// plugin raises about its configuration can point at the user's line. YAML stays behind
// this header: plugin authors never include yaml-cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graft/error.h"

namespace graft {

namespace detail {
struct Node;
}

/// The type of a configuration value, as declared by a plugin and checked by graft.
enum class ValueType {
  boolean,
  integer,
  number,       ///< integer or floating point
  string,
  int_list,
  number_list,
  string_list,
  section,      ///< a map or a list with its own structure, validated by the plugin
  any,          ///< anything at all
};

const char* value_type_name(ValueType type);

/// One configuration key of a plugin: its name, type, default, one-line doc and the
/// constraints a written value must meet. A key without a default is required.
///
///   graft::KeySpec("momentum", 0.9, "momentum factor").min(0)
///   graft::KeySpec("betas", std::vector<double>{0.9, 0.999}, "Adam's betas").min(0).less_than(1).length(2)
///   graft::KeySpec("mode", "min", "which way is better").choices({"min", "max"})
///
/// graft checks the constraints when it validates a section (Config::validated()), so a
/// factory never re-checks them; `graft plugins` shows them. Bounds apply to numbers and to
/// each item of a list of numbers; choices to strings and to each item of a list of strings.
/// Defaults are not checked at run time (a test checks the built-in ones).
struct KeySpec {
  struct Bound {
    double value = 0;
    bool exclusive = false;
  };

  std::string name;
  ValueType type = ValueType::any;
  std::string default_yaml;  ///< the default as YAML text; empty when required
  bool required = false;
  std::string doc;
  std::optional<Bound> lower;           ///< set by min() / greater_than()
  std::optional<Bound> upper;           ///< set by max() / less_than()
  std::vector<std::string> allowed;     ///< set by choices()
  bool nonempty = false;                ///< set by non_empty()
  bool finite_only = false;             ///< set by finite()
  std::optional<std::size_t> items;     ///< set by length()
  bool writes_file = false;             ///< set by output_file()

  KeySpec() = default;
  KeySpec(std::string name, bool def, std::string doc);
  KeySpec(std::string name, int def, std::string doc);
  KeySpec(std::string name, std::int64_t def, std::string doc);
  /// The default is written as the shortest text that reads back the same double (0.9).
  KeySpec(std::string name, double def, std::string doc);
  KeySpec(std::string name, const char* def, std::string doc);
  KeySpec(std::string name, std::vector<std::int64_t> def, std::string doc);
  KeySpec(std::string name, std::vector<double> def, std::string doc);
  KeySpec(std::string name, std::vector<std::string> def, std::string doc);
  /// An optional key of the given type with a default written as YAML ("~" = none).
  KeySpec(std::string name, ValueType type, std::string default_yaml, std::string doc);

  /// A key that must be given.
  static KeySpec required_key(std::string name, ValueType type, std::string doc);

  // Constraints (chained). Declaring one that cannot apply to the key's type (a bound on a
  // string, choices on a number) throws std::invalid_argument naming the key.
  /// value >= v, or value > v when `exclusive`. int, float and their lists.
  KeySpec& min(double v, bool exclusive = false);
  /// value <= v, or value < v when `exclusive`. int, float and their lists.
  KeySpec& max(double v, bool exclusive = false);
  KeySpec& greater_than(double v) { return min(v, true); }
  KeySpec& less_than(double v) { return max(v, true); }
  /// value is one of `values`. string and list[string].
  KeySpec& choices(std::vector<std::string> values);
  /// Not .inf, -.inf or .nan (YAML reads them as numbers). float and list[float].
  KeySpec& finite();
  /// Not "" (string), not [] (lists), not {} or [] (section).
  KeySpec& non_empty();
  /// Exactly `n` items. Lists.
  KeySpec& length(std::size_t n);
  /// A file the plugin writes (string): its directory must exist when the recipe is
  /// checked, so graft check and train fail at this key, not at the first write.
  KeySpec& output_file();

  bool constrained() const {
    return lower || upper || !allowed.empty() || nonempty || finite_only || items || writes_file;
  }
  /// The constraints in a few words, as `graft plugins` shows them: ">= 0", "in [0, 1)",
  /// "finite", "one of: min, max", "non-empty", "2 items, each in [0, 1)"; "" when none.
  std::string constraint_text() const;
};

using Schema = std::vector<KeySpec>;

class Config {
 public:
  /// An empty map that knows only its location and path.
  Config();
  Config(std::shared_ptr<const detail::Node> node, std::string path,
         std::shared_ptr<const Schema> schema = nullptr);

  bool is_null() const;
  bool is_scalar() const;
  bool is_map() const;
  bool is_list() const;

  /// Where this node is written, and its dotted key path ("model.backbone").
  const SourceLoc& where() const;
  const std::string& path() const;

  /// Map access. has() is true only for keys written in the recipe.
  bool has(const std::string& key) const;
  std::vector<std::string> keys() const;
  /// The child node; for an absent key, the declared default (or a null node).
  Config operator[](const std::string& key) const;
  /// List access.
  std::size_t size() const;
  Config operator[](std::size_t index) const;
  std::vector<Config> items() const;

  /// Typed access. Supported T: bool, int, std::int64_t, double, float, std::string,
  /// std::vector<std::int64_t>, std::vector<double>, std::vector<std::string>.
  /// get(key) falls back to the key's declared default and fails (exit 2, with the
  /// location) when the key is required and absent or has the wrong type.
  template <class T> T get(const std::string& key) const;
  template <class T> T get(const std::string& key, const T& fallback) const;
  /// This node itself as T.
  template <class T> T as() const;
  /// The scalar text ("" for non-scalars).
  std::string scalar() const;

  /// The same node, validated against a schema: unknown keys (with a "did you mean"),
  /// missing required keys and wrong types fail here, naming `what` ("backbone resnet18").
  Config validated(const Schema& schema, const std::string& what) const;
  /// Like validated() but with extra keys that the caller consumes itself.
  Config validated(const Schema& schema, const std::string& what,
                   const std::vector<std::string>& also_allowed) const;

  /// Throws an Error::usage located at this node: "file:line:col: <path>: message".
  [[noreturn]] void fail(const std::string& message) const;

  /// The node as YAML text (for the resolved recipe in a run dir, and for --json).
  std::string to_yaml() const;

  const std::shared_ptr<const detail::Node>& node() const { return node_; }

 private:
  std::shared_ptr<const detail::Node> node_;
  std::string path_;
  std::shared_ptr<const Schema> schema_;
};

}  // namespace graft
