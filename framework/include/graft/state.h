// graft::State — what a stateful plugin keeps in a checkpoint, and the one way every
// plugin kind (hooks, checkpoint strategies, schedulers, metrics, optimizers) hands its
// state to graft and gets it back on resume.
//
//   class EarlyStop : public graft::Hook {
//     void save_state(graft::State& s) const override { s.set("best", best_); s.set("bad_epochs", bad_); }
//     void load_state(const graft::State& s) override { best_ = s.get<double>("best"); bad_ = s.get<std::int64_t>("bad_epochs"); }
//   };
//
// A State is a flat, ordered map from names to values: none, bool, int, float, string,
// tensor, or a list of ints, floats or strings. In the checkpoint it is a plain dict that
// Python's torch.load reads. A read of a key that is absent or of another type throws
// graft::Error naming the key; graft adds the checkpoint and plugin to the message.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <ATen/core/Tensor.h>

#include "graft/error.h"

namespace graft {

class State {
 public:
  using Value = std::variant<std::monostate, bool, std::int64_t, double, std::string, torch::Tensor,
                             std::vector<std::int64_t>, std::vector<double>, std::vector<std::string>>;

  /// Sets `key` (replacing a value of the same name, keeping its position). Any integer
  /// is kept as int64, any floating point as double, text as a string.
  template <class T> void set(const std::string& key, T&& value) {
    using D = std::decay_t<T>;
    if constexpr (std::is_same_v<D, bool>) put(key, Value(value));
    else if constexpr (std::is_integral_v<D>) put(key, Value(static_cast<std::int64_t>(value)));
    else if constexpr (std::is_floating_point_v<D>) put(key, Value(static_cast<double>(value)));
    else if constexpr (std::is_convertible_v<const D&, std::string> && !std::is_same_v<D, Value>) put(key, Value(std::string(value)));
    else put(key, Value(std::forward<T>(value)));
  }

  bool has(const std::string& key) const;
  bool empty() const { return items_.empty(); }
  std::size_t size() const { return items_.size(); }
  std::vector<std::string> keys() const;
  const std::vector<std::pair<std::string, Value>>& items() const { return items_; }
  /// The value of `key`; throws graft::Error when absent.
  const Value& at(const std::string& key) const;

  /// Typed read: bool, std::int64_t (int), double (an int is accepted), std::string,
  /// torch::Tensor, std::vector<std::int64_t>, std::vector<double>, std::vector<std::string>.
  /// Throws graft::Error ("'best': expected a number, found a string") when absent or mistyped.
  template <class T> T get(const std::string& key) const;
  /// Like get(), but `fallback` when the key is absent (a mistyped value still throws).
  template <class T> T get(const std::string& key, T fallback) const {
    return has(key) ? get<T>(key) : fallback;
  }

  /// The name of a value's type, for messages ("none", "bool", "int", "float", ...).
  static const char* type_name(const Value& value);

 private:
  void put(const std::string& key, Value value);
  std::vector<std::pair<std::string, Value>> items_;
};

/// The one state interface of every stateful plugin kind: what it must keep for a resumed
/// run to go on exactly as the uninterrupted one (a best score, a patience counter, a
/// metric's running sums). Both no-ops by default: a plugin without state writes nothing.
class Stateful {
 public:
  virtual ~Stateful() = default;
  /// Called when a checkpoint is written: add what to keep to `out` (empty at first).
  virtual void save_state(State& out) const { (void)out; }
  /// Called on resume with what save_state() wrote (never called when it wrote nothing).
  virtual void load_state(const State& in) { (void)in; }
};

}  // namespace graft
