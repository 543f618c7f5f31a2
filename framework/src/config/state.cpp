#include "graft/state.h"

#include <algorithm>

namespace graft {

namespace {
template <class T> constexpr const char* expected_name() {
  if constexpr (std::is_same_v<T, bool>) return "a bool";
  else if constexpr (std::is_same_v<T, std::int64_t>) return "an int";
  else if constexpr (std::is_same_v<T, double>) return "a number";
  else if constexpr (std::is_same_v<T, std::string>) return "a string";
  else if constexpr (std::is_same_v<T, torch::Tensor>) return "a tensor";
  else if constexpr (std::is_same_v<T, std::vector<std::int64_t>>) return "a list of ints";
  else if constexpr (std::is_same_v<T, std::vector<double>>) return "a list of numbers";
  else return "a list of strings";
}
}  // namespace

void State::put(const std::string& key, Value value) {
  const auto it = std::find_if(items_.begin(), items_.end(), [&](const auto& kv) { return kv.first == key; });
  if (it != items_.end()) it->second = std::move(value);
  else items_.emplace_back(key, std::move(value));
}

bool State::has(const std::string& key) const {
  return std::any_of(items_.begin(), items_.end(), [&](const auto& kv) { return kv.first == key; });
}

std::vector<std::string> State::keys() const {
  std::vector<std::string> out;
  for (const auto& kv : items_) out.push_back(kv.first);
  return out;
}

const State::Value& State::at(const std::string& key) const {
  for (const auto& kv : items_)
    if (kv.first == key) return kv.second;
  throw Error::runtime("no '" + key + "' in the saved state");
}

const char* State::type_name(const Value& v) {
  static const char* const names[] = {"none", "bool", "int", "float", "string", "tensor", "int list", "float list", "string list"};
  return names[v.index()];
}

template <class T> T State::get(const std::string& key) const {
  const Value& v = at(key);
  if constexpr (std::is_same_v<T, double>) {
    if (const auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
  }
  if (const auto* x = std::get_if<T>(&v)) return *x;
  throw Error::runtime("'" + key + "': expected " + expected_name<T>() + ", found a " + type_name(v));
}

template bool State::get<bool>(const std::string&) const;
template std::int64_t State::get<std::int64_t>(const std::string&) const;
template double State::get<double>(const std::string&) const;
template std::string State::get<std::string>(const std::string&) const;
template torch::Tensor State::get<torch::Tensor>(const std::string&) const;
template std::vector<std::int64_t> State::get<std::vector<std::int64_t>>(const std::string&) const;
template std::vector<double> State::get<std::vector<double>>(const std::string&) const;
template std::vector<std::string> State::get<std::vector<std::string>>(const std::string&) const;

}  // namespace graft
