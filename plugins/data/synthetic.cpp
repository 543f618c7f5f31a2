// Deterministic random images for tests and benchmarks. Each class has a fixed pattern
// (a coarse random grid scaled up to the image size); a sample is its class pattern plus
// uniform noise, so a short training run can learn the classes. Sample i of a split
// depends only on (seed, split, i): its class is i mod num_classes.
#include <algorithm>
#include <cmath>

#include "common.h"

namespace {

using graft::Config;
using graft::DataSource;
using graft::Dataset;
using graft::Rng;
using graft::Sample;

constexpr std::int64_t kGrid = 4;  // pattern cells per side

class SyntheticSplit : public Dataset {
 public:
  SyntheticSplit(std::shared_ptr<const std::vector<torch::Tensor>> patterns, std::uint64_t seed, std::uint64_t split,
                 std::int64_t size, double noise)
      : patterns_(std::move(patterns)), seed_(seed), split_(split), size_(size), noise_(noise) {}

  std::int64_t size() const override { return size_; }

  Sample get(std::int64_t index) const override {
    if (index < 0 || index >= size_) throw graft::Error::runtime("synthetic: sample index out of range");
    const auto k = static_cast<std::int64_t>(patterns_->size());
    const auto target = index % k;
    const auto& pattern = (*patterns_)[static_cast<std::size_t>(target)];
    auto out = torch::empty_like(pattern, torch::kUInt8);
    const float* p = pattern.data_ptr<float>();
    std::uint8_t* o = out.data_ptr<std::uint8_t>();
    Rng rng(Rng::seed_for(seed_, split_, static_cast<std::uint64_t>(index)));
    const double amp = 127.5 * noise_;
    for (std::int64_t i = 0, n = out.numel(); i < n; ++i) {
      const double v = p[i] + rng.uniform(-amp, amp);
      o[i] = static_cast<std::uint8_t>(std::clamp(std::lround(v), 0L, 255L));
    }
    return {out, target};
  }

  std::vector<std::int64_t> targets() const override {
    std::vector<std::int64_t> t(static_cast<std::size_t>(size_));
    const auto k = static_cast<std::int64_t>(patterns_->size());
    for (std::int64_t i = 0; i < size_; ++i) t[static_cast<std::size_t>(i)] = i % k;
    return t;
  }

 private:
  std::shared_ptr<const std::vector<torch::Tensor>> patterns_;
  std::uint64_t seed_, split_;
  std::int64_t size_;
  double noise_;
};

class Synthetic : public DataSource {
 public:
  Synthetic(const Config& c)
      : seed_(static_cast<std::uint64_t>(c.get<std::int64_t>("seed"))),
        train_size_(c.get<std::int64_t>("train_size")),
        test_size_(c.get<std::int64_t>("test_size")),
        noise_(c.get<double>("noise")) {
    const auto k = c.get<std::int64_t>("num_classes");
    const auto shape = c.get<std::vector<std::int64_t>>("shape");
    auto patterns = std::make_shared<std::vector<torch::Tensor>>();
    for (std::int64_t cls = 0; cls < k; ++cls) {
      Rng rng(Rng::seed_for(seed_, 0x7061747465726eULL /* "pattern" */, static_cast<std::uint64_t>(cls)));
      auto grid = torch::empty({1, shape[0], kGrid, kGrid});
      auto* g = grid.data_ptr<float>();
      for (std::int64_t i = 0; i < grid.numel(); ++i) g[i] = static_cast<float>(rng.uniform(32, 224));
      namespace F = torch::nn::functional;
      auto big = F::interpolate(grid, F::InterpolateFuncOptions()
                                          .size(std::vector<std::int64_t>{shape[1], shape[2]})
                                          .mode(torch::kNearest));
      patterns->push_back(big[0].contiguous());
    }
    patterns_ = std::move(patterns);
  }

  std::vector<std::string> splits() const override { return {"train", "test"}; }

  std::shared_ptr<Dataset> open(const std::string& split) const override {
    if (split == "train") return std::make_shared<SyntheticSplit>(patterns_, seed_, 1, train_size_, noise_);
    if (split == "test") return std::make_shared<SyntheticSplit>(patterns_, seed_, 2, test_size_, noise_);
    graft::data::unknown_split("synthetic", split, splits());
  }

 private:
  std::uint64_t seed_;
  std::int64_t train_size_, test_size_;
  double noise_;
  std::shared_ptr<const std::vector<torch::Tensor>> patterns_;
};

std::shared_ptr<DataSource> make_synthetic(const Config& c) { return std::make_shared<Synthetic>(c); }

}  // namespace

GRAFT_PLUGIN(dataset, "synthetic", make_synthetic,
             "Deterministic random uint8 images: a fixed pattern per class plus noise; sample i has class i mod num_classes",
             graft::KeySpec("num_classes", 10, "classes").min(1),
             graft::KeySpec("shape", std::vector<std::int64_t>{1, 28, 28}, "image shape [C, H, W]").length(3).min(1),
             graft::KeySpec("train_size", 1000, "samples in the train split").min(0),
             graft::KeySpec("test_size", 200, "samples in the test split").min(0),
             graft::KeySpec("noise", 0.5, "noise amplitude relative to the pixel range (0: the bare patterns)")
                 .min(0)
                 .max(2),
             graft::KeySpec("seed", 0, "seed of the patterns and the noise"));
