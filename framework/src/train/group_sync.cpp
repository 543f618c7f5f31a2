#include "group_sync.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <torch/torch.h>

#include "graft/error.h"

namespace graft::train {

namespace {

// Length-prefixed fields in one byte string.
void put(std::string& out, const std::string& field) {
  const std::uint64_t n = field.size();
  out.append(reinterpret_cast<const char*>(&n), sizeof n);
  out += field;
}

std::string take(const std::string& in, std::size_t& at) {
  std::uint64_t n = 0;
  if (at + sizeof n > in.size()) throw Error::runtime("a rank sent a malformed message");
  std::memcpy(&n, in.data() + at, sizeof n);
  at += sizeof n;
  if (at + n > in.size()) throw Error::runtime("a rank sent a malformed message");
  std::string field = in.substr(at, n);
  at += n;
  return field;
}

template <class T> std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

template <class T> void append_raw(std::vector<T>& out, const std::string& bytes) {
  const std::size_t n = bytes.size() / sizeof(T);
  const std::size_t old = out.size();
  out.resize(old + n);
  std::memcpy(out.data() + old, bytes.data(), n * sizeof(T));
}

}  // namespace

void GroupSync::merge(const std::vector<std::shared_ptr<Metric>>& metrics, const std::string& what) const {
  if (!active() || metrics.empty()) return;
  std::string mine;
  for (const auto& m : metrics) {
    State s;
    m->save_state(s);
    put(mine, state_bytes(s));
  }
  const auto all = group_->all_gather(mine, what);
  std::vector<std::vector<State>> states(metrics.size());
  for (std::size_t r = 0; r < all.size(); ++r) {
    std::size_t at = 0;
    for (std::size_t k = 0; k < metrics.size(); ++k)
      states[k].push_back(state_from_bytes(take(all[r], at), fmt::format("rank {}'s metric states", r)));
  }
  // every rank merges the same states in the same (rank) order
  for (std::size_t k = 0; k < metrics.size(); ++k) {
    metrics[k]->reset();
    for (const auto& s : states[k]) metrics[k]->merge(s);
  }
}

void GroupSync::sum(double& value, std::int64_t& count, const std::string& what) const {
  if (!active()) return;
  auto t = torch::tensor({value, static_cast<double>(count)}, torch::kDouble);
  group_->all_reduce_sum(t, what);
  value = t[0].item<double>();
  count = static_cast<std::int64_t>(t[1].item<double>());
}

void GroupSync::gather(PassResult& r) const {
  if (!active()) return;
  std::string mine;
  put(mine, raw(r.indices));
  put(mine, raw(r.targets));
  put(mine, raw(r.predicted));
  put(mine, raw(r.confidence));
  const auto all = group_->all_gather(mine, "gathering the " + r.split + " pass's predictions");
  r.indices.clear();
  r.targets.clear();
  r.predicted.clear();
  r.confidence.clear();
  for (const auto& bytes : all) {
    std::size_t at = 0;
    append_raw(r.indices, take(bytes, at));
    append_raw(r.targets, take(bytes, at));
    append_raw(r.predicted, take(bytes, at));
    append_raw(r.confidence, take(bytes, at));
  }
}

void GroupSync::agree(std::vector<std::string>& names, TrainContext& ctx) const {
  if (!active()) return;
  std::string mine;
  put(mine, ctx.stop_requested ? "1" : "0");
  put(mine, std::to_string(ctx.exit_code));
  put(mine, ctx.stop_reason);
  for (const auto& n : names) put(mine, n);
  const auto all = group_->all_gather(mine, "agreeing on the save point");
  names.clear();
  for (std::size_t r = 0; r < all.size(); ++r) {
    std::size_t at = 0;
    const bool stop = take(all[r], at) == "1";
    const int code = std::stoi(take(all[r], at));
    const std::string reason = take(all[r], at);
    if (stop && !ctx.stop_requested) {
      ctx.stop_requested = true;
      ctx.stop_reason = static_cast<int>(r) == group_->rank() ? reason : fmt::format("{} (rank {})", reason, r);
    }
    ctx.exit_code = std::max(ctx.exit_code, code);
    while (at < all[r].size()) {
      const std::string n = take(all[r], at);
      if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    }
  }
}

std::string GroupSync::outcome(const std::string& paths, const std::string& error) const {
  if (!active()) {
    if (!error.empty()) throw Error::runtime(error);
    return paths;
  }
  const std::string word = group_->broadcast_bytes(error.empty() ? "ok\n" + paths : "error\n" + error, "checkpoint write");
  const auto nl = word.find('\n');
  if (word.substr(0, nl) == "ok") return word.substr(nl + 1);
  if (group_->rank() == 0) throw Error::runtime(error);
  throw Error::runtime(fmt::format("{}: rank 0 could not write the checkpoint: {}", group_->env().who(), word.substr(nl + 1)));
}

std::string GroupSync::from_leader(const std::string& text, const std::string& what) const {
  return active() ? group_->broadcast_bytes(text, what) : text;
}

void GroupSync::barrier(const std::string& what) const {
  if (active()) group_->barrier(what);
}

GroupTotals::GroupTotals(const GroupSync& sync, const std::vector<std::shared_ptr<Metric>>& metrics, EpochSums& sums)
    : metrics_(metrics), sums_(sums), own_sums_(sums), active_(sync.active()) {
  if (!active_) return;
  for (const auto& m : metrics) {
    own_.emplace_back();
    m->save_state(own_.back());
  }
  sync.merge(metrics, "merging the training metrics");
  sync.sum(sums.loss_sum, sums.seen, "summing the training loss");
}

GroupTotals::~GroupTotals() {
  if (!active_) return;
  sums_ = own_sums_;
  for (std::size_t k = 0; k < metrics_.size(); ++k) {
    if (own_[k].empty()) metrics_[k]->reset();
    else metrics_[k]->load_state(own_[k]);
  }
}

}  // namespace graft::train
