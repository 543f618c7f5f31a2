#include "graft/config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <limits>
#include <stdexcept>

#include "config/node.h"

namespace graft {

using detail::Node;
using detail::NodePtr;

const char* value_type_name(ValueType type) {
  switch (type) {
    case ValueType::boolean: return "bool";
    case ValueType::integer: return "int";
    case ValueType::number: return "float";
    case ValueType::string: return "string";
    case ValueType::int_list: return "list[int]";
    case ValueType::number_list: return "list[float]";
    case ValueType::string_list: return "list[string]";
    case ValueType::section: return "section";
    case ValueType::any: return "any";
  }
  return "?";
}

// ---- KeySpec ---------------------------------------------------------------------------

namespace {
// The shortest text that reads back as the same double, as YAML: 0.9, 2.0, 1e-08, .inf.
std::string yaml_of_number(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  std::string t = fmt::format("{}", v);
  if (t.find_first_of(".e") == std::string::npos) t += ".0";
  return t;
}
template <class T, class F> std::string yaml_list(const std::vector<T>& v, F f) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + f(v[i]);
  return s + "]";
}
std::string quote(const std::string& s) {
  YAML::Emitter e;
  e << YAML::DoubleQuoted << s;
  return e.c_str();
}
}  // namespace

KeySpec::KeySpec(std::string n, bool def, std::string d)
    : name(std::move(n)), type(ValueType::boolean), default_yaml(def ? "true" : "false"), doc(std::move(d)) {}
KeySpec::KeySpec(std::string n, int def, std::string d)
    : KeySpec(std::move(n), static_cast<std::int64_t>(def), std::move(d)) {}
KeySpec::KeySpec(std::string n, std::int64_t def, std::string d)
    : name(std::move(n)), type(ValueType::integer), default_yaml(std::to_string(def)), doc(std::move(d)) {}
KeySpec::KeySpec(std::string n, double def, std::string d)
    : name(std::move(n)), type(ValueType::number), default_yaml(yaml_of_number(def)), doc(std::move(d)) {}
KeySpec::KeySpec(std::string n, const char* def, std::string d)
    : name(std::move(n)), type(ValueType::string), default_yaml(quote(def)), doc(std::move(d)) {}
KeySpec::KeySpec(std::string n, std::vector<std::int64_t> def, std::string d)
    : name(std::move(n)), type(ValueType::int_list),
      default_yaml(yaml_list(def, [](std::int64_t v) { return std::to_string(v); })), doc(std::move(d)) {}
KeySpec::KeySpec(std::string n, std::vector<double> def, std::string d)
    : name(std::move(n)), type(ValueType::number_list), default_yaml(yaml_list(def, yaml_of_number)),
      doc(std::move(d)) {}
KeySpec::KeySpec(std::string n, std::vector<std::string> def, std::string d)
    : name(std::move(n)), type(ValueType::string_list), default_yaml(yaml_list(def, quote)), doc(std::move(d)) {}
KeySpec::KeySpec(std::string n, ValueType t, std::string def, std::string d)
    : name(std::move(n)), type(t), default_yaml(std::move(def)), doc(std::move(d)) {}

KeySpec KeySpec::required_key(std::string name, ValueType type, std::string doc) {
  KeySpec k(std::move(name), type, "", std::move(doc));
  k.required = true;
  return k;
}

// ---- constraints -----------------------------------------------------------------------

namespace {

bool is_list_type(ValueType t) {
  return t == ValueType::int_list || t == ValueType::number_list || t == ValueType::string_list;
}

void require_type(const KeySpec& k, const char* constraint, std::initializer_list<ValueType> types, const char* needs) {
  if (std::find(types.begin(), types.end(), k.type) == types.end())
    throw std::invalid_argument("KeySpec '" + k.name + "': ." + constraint + "() applies to " + needs + ", not to " +
                                value_type_name(k.type));
}

void require_numeric(const KeySpec& k, const char* constraint) {
  require_type(k, constraint, {ValueType::integer, ValueType::number, ValueType::int_list, ValueType::number_list},
               "int, float and their lists");
}

std::string number_text(double v) { return fmt::format("{}", v); }

// ">= 0", "< 1", "in [0, 1)"; "" without bounds.
std::string bounds_text(const KeySpec& k) {
  if (k.lower && k.upper)
    return fmt::format("in {}{}, {}{}", k.lower->exclusive ? "(" : "[", number_text(k.lower->value),
                       number_text(k.upper->value), k.upper->exclusive ? ")" : "]");
  if (k.lower) return (k.lower->exclusive ? "> " : ">= ") + number_text(k.lower->value);
  if (k.upper) return (k.upper->exclusive ? "< " : "<= ") + number_text(k.upper->value);
  return "";
}

// What one number must be: bounds, and "finite" unless finite bounds on both sides say it.
std::string number_rule(const KeySpec& k) {
  const bool implied = k.lower && k.upper && std::isfinite(k.lower->value) && std::isfinite(k.upper->value);
  const std::string bounds = bounds_text(k);
  if (!k.finite_only || implied) return bounds;
  return bounds.empty() ? "finite" : "finite and " + bounds;
}

bool within_bounds(const KeySpec& k, double v) {
  if (k.lower && !(k.lower->exclusive ? v > k.lower->value : v >= k.lower->value)) return false;
  if (k.upper && !(k.upper->exclusive ? v < k.upper->value : v <= k.upper->value)) return false;
  return true;
}

std::string choices_text(const KeySpec& k) {
  std::string s = "one of: ";
  for (std::size_t i = 0; i < k.allowed.size(); ++i) s += (i ? ", " : "") + k.allowed[i];
  return s;
}

}  // namespace

KeySpec& KeySpec::min(double v, bool exclusive) {
  require_numeric(*this, exclusive ? "greater_than" : "min");
  lower = Bound{v, exclusive};
  return *this;
}

KeySpec& KeySpec::max(double v, bool exclusive) {
  require_numeric(*this, exclusive ? "less_than" : "max");
  upper = Bound{v, exclusive};
  return *this;
}

KeySpec& KeySpec::choices(std::vector<std::string> values) {
  require_type(*this, "choices", {ValueType::string, ValueType::string_list}, "string and list[string]");
  if (values.empty()) throw std::invalid_argument("KeySpec '" + name + "': .choices() needs at least one value");
  allowed = std::move(values);
  return *this;
}

KeySpec& KeySpec::finite() {
  require_type(*this, "finite", {ValueType::number, ValueType::number_list}, "float and list[float]");
  finite_only = true;
  return *this;
}

KeySpec& KeySpec::non_empty() {
  require_type(*this, "non_empty",
               {ValueType::string, ValueType::int_list, ValueType::number_list, ValueType::string_list, ValueType::section},
               "strings, lists and sections");
  nonempty = true;
  return *this;
}

KeySpec& KeySpec::length(std::size_t n) {
  require_type(*this, "length", {ValueType::int_list, ValueType::number_list, ValueType::string_list}, "lists");
  items = n;
  return *this;
}

KeySpec& KeySpec::output_file() {
  require_type(*this, "output_file", {ValueType::string}, "strings");
  writes_file = true;
  return *this;
}

std::string KeySpec::constraint_text() const {
  std::vector<std::string> parts;
  const bool list = is_list_type(type);
  if (items) parts.push_back(fmt::format("{} item{}", *items, *items == 1 ? "" : "s"));
  if (nonempty) parts.emplace_back("non-empty");
  if (writes_file) parts.emplace_back("a file to write (its directory exists)");
  const std::string each = list ? "each " : "";
  if (lower || upper || finite_only) parts.push_back(each + number_rule(*this));
  if (!allowed.empty()) parts.push_back(each + choices_text(*this));
  std::string s;
  for (std::size_t i = 0; i < parts.size(); ++i) s += (i ? ", " : "") + parts[i];
  return s;
}

// ---- scalar conversion -----------------------------------------------------------------

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool to_bool(const Node& n, bool& out) {
  if (n.type != Node::Type::scalar || n.quoted) return false;
  const std::string v = lower(n.value);
  if (v == "true" || v == "yes" || v == "on") return out = true, true;
  if (v == "false" || v == "no" || v == "off") return out = false, true;
  return false;
}

bool to_int(const Node& n, std::int64_t& out) {
  if (n.type != Node::Type::scalar || n.quoted || n.value.empty()) return false;
  const char* b = n.value.data();
  const char* e = b + n.value.size();
  if (*b == '+') ++b;
  auto [p, ec] = std::from_chars(b, e, out);
  return ec == std::errc() && p == e;
}

bool to_double(const Node& n, double& out) {
  if (n.type != Node::Type::scalar || n.quoted || n.value.empty()) return false;
  const std::string v = lower(n.value);
  if (v == ".inf" || v == "+.inf") return out = std::numeric_limits<double>::infinity(), true;
  if (v == "-.inf") return out = -std::numeric_limits<double>::infinity(), true;
  if (v == ".nan") return out = std::numeric_limits<double>::quiet_NaN(), true;
  char* end = nullptr;
  out = std::strtod(n.value.c_str(), &end);
  return end == n.value.c_str() + n.value.size();
}

std::string shown(const Node& n) {
  switch (n.type) {
    case Node::Type::null: return "nothing";
    case Node::Type::scalar: return "'" + n.value + "'";
    case Node::Type::list: return "a list";
    case Node::Type::map: return "a map";
  }
  return "?";
}

// Checks that `n` holds a value of `type` (without converting it for the caller).
bool has_type(const Node& n, ValueType type) {
  bool b;
  std::int64_t i;
  double d;
  auto all = [&](auto pred) {
    if (n.type != Node::Type::list) return false;
    return std::all_of(n.items.begin(), n.items.end(), [&](const NodePtr& it) { return pred(*it); });
  };
  switch (type) {
    case ValueType::boolean: return to_bool(n, b);
    case ValueType::integer: return to_int(n, i);
    case ValueType::number: return to_double(n, d);
    case ValueType::string: return n.type == Node::Type::scalar;
    case ValueType::int_list: return all([&](const Node& x) { return to_int(x, i); });
    case ValueType::number_list: return all([&](const Node& x) { return to_double(x, d); });
    case ValueType::string_list: return all([](const Node& x) { return x.type == Node::Type::scalar; });
    case ValueType::section: return n.type == Node::Type::map || n.type == Node::Type::list;
    case ValueType::any: return true;
  }
  return false;
}

const char* expected_text(ValueType type) {
  switch (type) {
    case ValueType::boolean: return "true or false";
    case ValueType::integer: return "an integer";
    case ValueType::number: return "a number";
    case ValueType::string: return "a string";
    case ValueType::int_list: return "a list of integers";
    case ValueType::number_list: return "a list of numbers";
    case ValueType::string_list: return "a list of strings";
    case ValueType::section: return "a map or a list";
    case ValueType::any: return "a value";
  }
  return "?";
}

}  // namespace

// ---- Config ----------------------------------------------------------------------------

Config::Config() : node_(detail::null_node({})) {}

Config::Config(std::shared_ptr<const detail::Node> node, std::string path, std::shared_ptr<const Schema> schema)
    : node_(node ? std::move(node) : detail::null_node({})), path_(std::move(path)), schema_(std::move(schema)) {}

bool Config::is_null() const { return node_->type == Node::Type::null; }
bool Config::is_scalar() const { return node_->type == Node::Type::scalar; }
bool Config::is_map() const { return node_->type == Node::Type::map; }
bool Config::is_list() const { return node_->type == Node::Type::list; }
const SourceLoc& Config::where() const { return node_->loc; }
const std::string& Config::path() const { return path_; }
std::string Config::scalar() const { return is_scalar() ? node_->value : std::string(); }

bool Config::has(const std::string& key) const { return is_map() && node_->find(key) != nullptr; }

std::vector<std::string> Config::keys() const {
  std::vector<std::string> k;
  for (const auto& e : node_->entries) k.push_back(e.key);
  return k;
}

static std::string join_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

Config Config::operator[](const std::string& key) const {
  if (const auto* e = is_map() ? node_->find(key) : nullptr) return Config(e->value, join_path(path_, key));
  if (schema_) {
    for (const auto& spec : *schema_) {
      if (spec.name != key || spec.default_yaml.empty()) continue;
      auto def = detail::parse_yaml(spec.default_yaml, "default of " + key, false);
      auto copy = std::make_shared<Node>(*def);
      copy->loc = node_->loc;  // errors about a default point at the section that took it
      return Config(copy, join_path(path_, key));
    }
  }
  return Config(detail::null_node(node_->loc), join_path(path_, key));
}

std::size_t Config::size() const {
  if (is_list()) return node_->items.size();
  if (is_map()) return node_->entries.size();
  return 0;
}

Config Config::operator[](std::size_t index) const {
  if (!is_list() || index >= node_->items.size())
    fail("has no item " + std::to_string(index));
  return Config(node_->items[index], join_path(path_, std::to_string(index)));
}

std::vector<Config> Config::items() const {
  std::vector<Config> out;
  for (std::size_t i = 0; i < node_->items.size(); ++i) out.push_back((*this)[i]);
  return out;
}

void Config::fail(const std::string& message) const {
  throw Error::usage(path_.empty() ? message : path_ + ": " + message, node_->loc);
}

std::string Config::to_yaml() const {
  YAML::Emitter e;
  e << detail::to_yaml(*node_);
  return e.c_str();
}

// ---- typed access ----------------------------------------------------------------------

namespace {
template <class T> struct TypeOf;
template <> struct TypeOf<bool> { static constexpr ValueType v = ValueType::boolean; };
template <> struct TypeOf<int> { static constexpr ValueType v = ValueType::integer; };
template <> struct TypeOf<std::int64_t> { static constexpr ValueType v = ValueType::integer; };
template <> struct TypeOf<double> { static constexpr ValueType v = ValueType::number; };
template <> struct TypeOf<float> { static constexpr ValueType v = ValueType::number; };
template <> struct TypeOf<std::string> { static constexpr ValueType v = ValueType::string; };
template <> struct TypeOf<std::vector<std::int64_t>> { static constexpr ValueType v = ValueType::int_list; };
template <> struct TypeOf<std::vector<double>> { static constexpr ValueType v = ValueType::number_list; };
template <> struct TypeOf<std::vector<std::string>> { static constexpr ValueType v = ValueType::string_list; };

template <class T> T convert(const Node& n);
template <> bool convert<bool>(const Node& n) { bool b = false; to_bool(n, b); return b; }
template <> std::int64_t convert<std::int64_t>(const Node& n) { std::int64_t i = 0; to_int(n, i); return i; }
template <> int convert<int>(const Node& n) { return static_cast<int>(convert<std::int64_t>(n)); }
template <> double convert<double>(const Node& n) { double d = 0; to_double(n, d); return d; }
template <> float convert<float>(const Node& n) { return static_cast<float>(convert<double>(n)); }
template <> std::string convert<std::string>(const Node& n) { return n.value; }
template <class T> std::vector<T> convert_list(const Node& n) {
  std::vector<T> out;
  for (const auto& it : n.items) out.push_back(convert<T>(*it));
  return out;
}
template <> std::vector<std::int64_t> convert<std::vector<std::int64_t>>(const Node& n) { return convert_list<std::int64_t>(n); }
template <> std::vector<double> convert<std::vector<double>>(const Node& n) { return convert_list<double>(n); }
template <> std::vector<std::string> convert<std::vector<std::string>>(const Node& n) { return convert_list<std::string>(n); }
}  // namespace

template <class T> T Config::as() const {
  if (!has_type(*node_, TypeOf<T>::v)) fail("expected " + std::string(expected_text(TypeOf<T>::v)) + ", got " + shown(*node_));
  if constexpr (std::is_same_v<T, int>) {
    const auto v = convert<std::int64_t>(*node_);
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) fail("integer out of range");
  }
  return convert<T>(*node_);
}

template <class T> T Config::get(const std::string& key) const {
  const Config child = (*this)[key];
  if (child.is_null()) {
    const bool declared = schema_ && std::any_of(schema_->begin(), schema_->end(),
                                                 [&](const KeySpec& k) { return k.name == key; });
    fail(std::string(declared ? "missing required key '" : "missing key '") + key + "'");
  }
  return child.as<T>();
}

template <class T> T Config::get(const std::string& key, const T& fallback) const {
  const Config child = (*this)[key];
  return child.is_null() ? fallback : child.as<T>();
}

#define GRAFT_INSTANTIATE(T)                                          \
  template T Config::as<T>() const;                                   \
  template T Config::get<T>(const std::string&) const;                \
  template T Config::get<T>(const std::string&, const T&) const;
GRAFT_INSTANTIATE(bool)
GRAFT_INSTANTIATE(int)
GRAFT_INSTANTIATE(std::int64_t)
GRAFT_INSTANTIATE(double)
GRAFT_INSTANTIATE(float)
GRAFT_INSTANTIATE(std::string)
GRAFT_INSTANTIATE(std::vector<std::int64_t>)
GRAFT_INSTANTIATE(std::vector<double>)
GRAFT_INSTANTIATE(std::vector<std::string>)
#undef GRAFT_INSTANTIATE

// ---- validation ------------------------------------------------------------------------

namespace {

[[noreturn]] void fail_at(const Node& n, const std::string& path, const std::string& message) {
  throw Error::usage(path + ": " + message, n.loc);
}

// One scalar (the value, or an item of a list value) against bounds and choices.
void check_scalar(const KeySpec& k, const Node& n, const std::string& path) {
  if (k.lower || k.upper || k.finite_only) {
    double v = 0;
    to_double(n, v);  // the type was checked before
    if (k.finite_only && !std::isfinite(v)) fail_at(n, path, "must be a finite number, got " + n.value);
    if (!within_bounds(k, v)) fail_at(n, path, "must be " + bounds_text(k) + ", got " + n.value);
  }
  if (!k.allowed.empty() && std::find(k.allowed.begin(), k.allowed.end(), n.value) == k.allowed.end()) {
    std::string msg = "must be " + choices_text(k) + "; got '" + n.value + "'";
    const std::string guess = closest_match(n.value, k.allowed);
    if (!guess.empty()) msg += " (did you mean '" + guess + "'?)";
    fail_at(n, path, msg);
  }
}

// A written value of the right type against the key's declared constraints.
void check_constraints(const KeySpec& k, const Node& n, const std::string& path) {
  const bool list = n.type == Node::Type::list;
  const std::size_t size = list ? n.items.size() : n.entries.size();
  if (k.nonempty) {
    if (n.type == Node::Type::scalar && n.value.empty()) fail_at(n, path, "must not be empty");
    if (n.type != Node::Type::scalar && size == 0) fail_at(n, path, list ? "must not be an empty list" : "must not be empty");
  }
  if (k.writes_file && n.type == Node::Type::scalar && !n.value.empty()) {
    const std::filesystem::path dir = std::filesystem::path(n.value).parent_path();
    if (!dir.empty() && !std::filesystem::is_directory(dir))
      fail_at(n, path, "the directory '" + dir.string() + "' of this file to write does not exist");
  }
  if (k.items && list && size != *k.items)
    fail_at(n, path, fmt::format("must have {} item{}, got {}", *k.items, *k.items == 1 ? "" : "s", size));
  if (!k.lower && !k.upper && !k.finite_only && k.allowed.empty()) return;
  if (!list) return check_scalar(k, n, path);
  for (std::size_t i = 0; i < n.items.size(); ++i) check_scalar(k, *n.items[i], join_path(path, std::to_string(i)));
}

}  // namespace

Config Config::validated(const Schema& schema, const std::string& what) const {
  return validated(schema, what, {});
}

Config Config::validated(const Schema& schema, const std::string& what,
                         const std::vector<std::string>& also_allowed) const {
  if (!is_map() && !is_null()) fail("expected a map of settings for " + what + ", got " + shown(*node_));
  std::vector<std::string> known = also_allowed;
  for (const auto& k : schema) known.push_back(k.name);

  for (const auto& e : node_->entries) {
    if (std::find(known.begin(), known.end(), e.key) != known.end()) continue;
    std::string msg = "unknown key '" + e.key + "' in " + what;
    const std::string guess = closest_match(e.key, known);
    msg += guess.empty() ? " (known keys: " : " (did you mean '" + guess + "'?)";
    if (guess.empty()) {
      for (std::size_t i = 0; i < known.size(); ++i) msg += (i ? ", " : "") + known[i];
      msg += known.empty() ? "none)" : ")";
    }
    throw Error::usage(join_path(path_, e.key) + ": " + msg, e.key_loc);
  }
  for (const auto& k : schema) {
    const auto* e = is_map() ? node_->find(k.name) : nullptr;
    if (!e || e->value->type == Node::Type::null) {
      if (k.required) fail("missing required key '" + k.name + "' (" + value_type_name(k.type) + ") for " + what);
      continue;
    }
    if (!has_type(*e->value, k.type)) {
      throw Error::usage(join_path(path_, k.name) + ": expected " + expected_text(k.type) + ", got " +
                             shown(*e->value),
                         e->value->loc);
    }
    if (k.constrained()) check_constraints(k, *e->value, join_path(path_, k.name));
  }
  return Config(node_, path_, std::make_shared<const Schema>(schema));
}

}  // namespace graft
