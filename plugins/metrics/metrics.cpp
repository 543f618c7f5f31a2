// Classification metrics: top-k accuracy, per-class accuracy and the confusion matrix. All
// of them keep exact int64 counts on the CPU, so accumulating batch by batch gives exactly
// what one big batch gives, whatever the device and dtype of the logits.
//
// Ties: the prediction is torch.argmax's (the first of equal maxima, NaN above everything),
// and top-k ranks classes as a stable descending torch.sort does (equal logits in class
// order), so top1 is always the confusion matrix's trace over the sample count. torch.topk
// breaks ties in no documented order; on logits without ties it agrees with this.
#include <torch/torch.h>

#include <algorithm>
#include <iomanip>
#include <sstream>

#include <graft/metrics.h>

#include "batch.h"

namespace {

using graft::metrics::checked_target;

// Each sample's target position in its logits sorted as above: 0 = the argmax.
torch::Tensor target_rank(const torch::Tensor& x, const torch::Tensor& t) {
  const auto xt = x.gather(1, t.unsqueeze(1));
  const auto nan_x = x.isnan(), nan_t = xt.isnan();
  const auto above = (x > xt) | (nan_x & ~nan_t);
  const auto tie = (x == xt) | (nan_x & nan_t);
  const auto before = torch::arange(x.size(1), t.options()).unsqueeze(0) < t.unsqueeze(1);
  return (above | (tie & before)).sum(1);
}

// What every metric here shares: the sample count and the number of classes, fixed by the
// first batch after reset().
class Counting : public graft::Metric {
 public:
  explicit Counting(std::string who) : who_(std::move(who)) {}

  void reset() override {
    seen_ = 0;
    classes_ = 0;
    clear();
  }

  void update(const torch::Tensor& output, const torch::Tensor& target) override {
    torch::NoGradGuard no_grad;
    const auto x = output.detach();
    const auto t = checked_target(who_, x, target);
    const std::int64_t k = x.size(1);
    if (classes_ == 0) {
      classes_ = k;
      clear();
    } else if (k != classes_) {
      throw graft::Error::usage(who_ + ": this batch has " + std::to_string(k) + " classes, the earlier ones had " +
                                std::to_string(classes_));
    }
    count(x, t);
    seen_ += x.size(0);
  }

 void save_state(graft::State& s) const override {
    s.set("seen", seen_);
    s.set("classes", classes_);
    save_sums(s);
  }
  void load_state(const graft::State& s) override {
    reset();
    classes_ = s.get<std::int64_t>("classes");
    clear();
    seen_ = s.get<std::int64_t>("seen");
    load_sums(s);
  }
  // Another rank's counts of the same pass: added.
  void merge(const graft::State& other) override {
    if (other.get<std::int64_t>("seen") == 0) return;
    if (seen_ == 0) {
      load_state(other);
      return;
    }
    if (other.get<std::int64_t>("classes") != classes_)
      throw graft::Error::runtime(who_ + ": another rank's batches had " + std::to_string(other.get<std::int64_t>("classes")) +
                                  " classes, this rank's " + std::to_string(classes_));
    seen_ += other.get<std::int64_t>("seen");
    add_sums(other);
  }

 protected:
  virtual void clear() = 0;  // classes_ is already set (0 after reset())
  virtual void save_sums(graft::State& s) const = 0;
  virtual void load_sums(const graft::State& s) = 0;
  virtual void add_sums(const graft::State& s) = 0;
  virtual void count(const torch::Tensor& logits, const torch::Tensor& target) = 0;

  std::string who_;
  std::int64_t seen_ = 0;
  std::int64_t classes_ = 0;
};

class Accuracy : public Counting {
 public:
  explicit Accuracy(std::vector<std::int64_t> ks) : Counting("metric 'accuracy'"), ks_(std::move(ks)) { reset(); }

  // Top-k for k above the number of classes is left out: it is 1.0 for any model.
  std::map<std::string, double> compute() const override {
    std::map<std::string, double> r;
    if (seen_ == 0) return r;
    for (std::size_t i = 0; i < ks_.size(); ++i)
      if (ks_[i] <= classes_)
        r["top" + std::to_string(ks_[i])] = static_cast<double>(correct_[i]) / static_cast<double>(seen_);
    return r;
  }

 private:
  void clear() override { correct_.assign(ks_.size(), 0); }
  void save_sums(graft::State& s) const override {
    s.set("ks", ks_);
    s.set("correct", correct_);
  }
  void load_sums(const graft::State& s) override {
    if (s.get<std::vector<std::int64_t>>("ks") != ks_) throw graft::Error::runtime("saved for other ks than the recipe's");
    correct_ = s.get<std::vector<std::int64_t>>("correct");
    if (correct_.size() != ks_.size()) throw graft::Error::runtime("'correct' does not match 'ks'");
  }
  void add_sums(const graft::State& s) override {
    const auto more = s.get<std::vector<std::int64_t>>("correct");
    if (more.size() != correct_.size()) throw graft::Error::runtime("'correct' does not match 'ks'");
    for (std::size_t i = 0; i < more.size(); ++i) correct_[i] += more[i];
  }

  void count(const torch::Tensor& x, const torch::Tensor& t) override {
    const auto rank = target_rank(x, t).unsqueeze(1);
    const auto ks = torch::tensor(ks_, t.options()).unsqueeze(0);
    const auto hits = (rank < ks).sum(0).cpu();  // one transfer per batch
    for (std::size_t i = 0; i < ks_.size(); ++i) correct_[i] += hits[static_cast<std::int64_t>(i)].item<std::int64_t>();
  }

  std::vector<std::int64_t> ks_;
  std::vector<std::int64_t> correct_;
};

std::string class_name(const std::vector<std::string>& classes, std::int64_t i) {
  return static_cast<std::size_t>(i) < classes.size() ? classes[static_cast<std::size_t>(i)] : std::to_string(i);
}

std::string fraction(double v) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(4) << v;
  return s.str();
}

// Counts[true class][predicted class], int64 on the CPU.
class Confusion : public Counting {
 public:
  using Counting::Counting;
  const torch::Tensor& counts() const { return counts_; }

 protected:
  void clear() override { counts_ = torch::zeros({classes_, classes_}, torch::kLong); }
  void save_sums(graft::State& s) const override { s.set("counts", counts_); }
  void load_sums(const graft::State& s) override {
    const auto c = s.get<torch::Tensor>("counts");
    if (c.sizes() != counts_.sizes()) throw graft::Error::runtime("'counts' does not match 'classes'");
    counts_ = c.to(torch::kLong).clone();
  }
  void add_sums(const graft::State& s) override {
    const auto c = s.get<torch::Tensor>("counts");
    if (c.sizes() != counts_.sizes()) throw graft::Error::runtime("'counts' does not match 'classes'");
    counts_ += c.to(torch::kLong);
  }

  void count(const torch::Tensor& x, const torch::Tensor& t) override {
    const auto k = classes_;
    const auto cell = t * k + x.argmax(1);
    counts_ += torch::bincount(cell, {}, k * k).view({k, k}).to(torch::kCPU, torch::kLong);
  }

  torch::Tensor counts_;
};

class PerClassAccuracy : public Confusion {
 public:
  PerClassAccuracy() : Confusion("metric 'per_class_accuracy'") { reset(); }

  // The mean of the per-class accuracies over the classes that had samples (sklearn's
  // balanced_accuracy_score).
  std::map<std::string, double> compute() const override {
    if (seen_ == 0) return {};
    const auto [correct, total] = per_class();
    const auto has = total > 0;
    const auto acc = correct.masked_select(has).to(torch::kDouble) / total.masked_select(has).to(torch::kDouble);
    return {{"mean_class_acc", acc.mean().item<double>()}};
  }

  std::string report(const std::vector<std::string>& classes) const override {
    if (seen_ == 0) return {};
    const auto [correct, total] = per_class();
    std::size_t w = 5;
    for (std::int64_t i = 0; i < classes_; ++i) w = std::max(w, class_name(classes, i).size());
    std::ostringstream s;
    s << "per-class accuracy (top-1) over " << seen_ << " samples\n"
      << std::left << std::setw(static_cast<int>(w)) << "class" << std::right << std::setw(10) << "correct"
      << std::setw(10) << "total" << std::setw(10) << "accuracy" << "\n";
    for (std::int64_t i = 0; i < classes_; ++i) {
      const auto c = correct[i].item<std::int64_t>(), n = total[i].item<std::int64_t>();
      s << std::left << std::setw(static_cast<int>(w)) << class_name(classes, i) << std::right << std::setw(10) << c
        << std::setw(10) << n << std::setw(10) << (n ? fraction(static_cast<double>(c) / static_cast<double>(n)) : "-")
        << "\n";
    }
    s << "mean over the classes with samples: " << fraction(compute().at("mean_class_acc")) << "\n";
    return s.str();
  }

 private:
  std::pair<torch::Tensor, torch::Tensor> per_class() const { return {counts_.diagonal(), counts_.sum(1)}; }
};

// Beyond this many classes the table is too wide to read; the report lists the largest
// confusions instead.
constexpr std::int64_t max_table_classes = 30;
constexpr std::int64_t listed_confusions = 20;

class ConfusionMatrix : public Confusion {
 public:
  ConfusionMatrix() : Confusion("metric 'confusion_matrix'") { reset(); }

  // The matrix itself is the report.
  std::map<std::string, double> compute() const override { return {}; }

  std::string report(const std::vector<std::string>& classes) const override {
    if (seen_ == 0) return {};
    std::ostringstream s;
    s << "confusion matrix over " << seen_ << " samples (rows: true class, columns: predicted)\n";
    if (classes_ > max_table_classes) return s.str() + largest_confusions(classes);
    std::vector<std::string> names;
    std::size_t row_w = 0, col_w = std::to_string(counts_.max().item<std::int64_t>()).size();
    for (std::int64_t i = 0; i < classes_; ++i) {
      names.push_back(class_name(classes, i));
      row_w = std::max(row_w, names.back().size());
      col_w = std::max(col_w, std::min<std::size_t>(names.back().size(), 12));
    }
    s << std::string(row_w, ' ');
    for (const auto& n : names) s << "  " << std::setw(static_cast<int>(col_w)) << n.substr(0, 12);
    s << "\n";
    const auto c = counts_.accessor<std::int64_t, 2>();
    for (std::int64_t i = 0; i < classes_; ++i) {
      s << std::left << std::setw(static_cast<int>(row_w)) << names[static_cast<std::size_t>(i)] << std::right;
      for (std::int64_t j = 0; j < classes_; ++j) s << "  " << std::setw(static_cast<int>(col_w)) << c[i][j];
      s << "\n";
    }
    return s.str();
  }

 private:
  std::string largest_confusions(const std::vector<std::string>& classes) const {
    const auto off = counts_ - torch::diag(counts_.diagonal());
    const auto [count, cell] = off.flatten().topk(std::min(listed_confusions, off.numel()));
    std::ostringstream s;
    s << classes_ << " classes, too many for a table; the largest confusions (true -> predicted: count):\n";
    for (std::int64_t r = 0; r < count.size(0); ++r) {
      const auto n = count[r].item<std::int64_t>(), at = cell[r].item<std::int64_t>();
      if (n == 0) break;
      s << "  " << class_name(classes, at / classes_) << " -> " << class_name(classes, at % classes_) << ": " << n
        << "\n";
    }
    return s.str();
  }
};

std::shared_ptr<graft::Metric> make_accuracy(const graft::Config& c) {
  const auto ks = c.get<std::vector<std::int64_t>>("topk");
  for (std::size_t i = 0; i < ks.size(); ++i) {  // non-empty, each >= 1 (its KeySpec)
    if (std::find(ks.begin(), ks.begin() + static_cast<std::ptrdiff_t>(i), ks[i]) != ks.begin() + static_cast<std::ptrdiff_t>(i))
      c["topk"][i].fail("k = " + std::to_string(ks[i]) + " is listed twice");
  }
  return std::make_shared<Accuracy>(ks);
}

std::shared_ptr<graft::Metric> make_per_class_accuracy(const graft::Config&) {
  return std::make_shared<PerClassAccuracy>();
}

std::shared_ptr<graft::Metric> make_confusion_matrix(const graft::Config&) {
  return std::make_shared<ConfusionMatrix>();
}

}  // namespace

GRAFT_PLUGIN(metric, "accuracy", make_accuracy,
             "top-k accuracy: 'top1', 'top5', ... (a k above the number of classes is not reported)",
             graft::KeySpec("topk", std::vector<std::int64_t>{1, 5}, "the k values").non_empty().min(1));
GRAFT_PLUGIN(metric, "per_class_accuracy", make_per_class_accuracy,
             "top-1 accuracy of each class (report) and their mean over the classes seen: 'mean_class_acc'");
GRAFT_PLUGIN(metric, "confusion_matrix", make_confusion_matrix,
             "counts of (true class, predicted class), reported as a table; no values");
