// The loader (graft/loader.h): batches that do not depend on the number of workers, the
// prefetch depth or where an epoch was resumed; per-epoch orders; drop_last; worker errors.
// Then build_data(): the recipe's data: section with class subsets, per_class and a seeded
// validation hold-out, and the errors a wrong section gets.
#define BOOST_TEST_MODULE loader
#include <boost/test/unit_test.hpp>
#include <torch/torch.h>

#include <ATen/Parallel.h>

#include <chrono>
#include <filesystem>
#include <mutex>
#include <set>

#include "graft/host/data_plan.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "support/plugins.h"
#include "support/run.h"

using graft::Batch;
using graft::Loader;
using graft::LoaderOptions;
using graft::test::contains;
using graft::test::one_line_error_of;
using graft::test::registry;
namespace fs = std::filesystem;

namespace {

// Sample i: a [1, 2, 3] uint8 image filled with i % 251, class i % 3. Throws for `bad`.
struct Counting : graft::Dataset {
  std::int64_t n;
  std::int64_t bad = -1;
  explicit Counting(std::int64_t n) : n(n) {}
  std::int64_t size() const override { return n; }
  graft::Sample get(std::int64_t i) const override {
    if (i == bad) throw graft::Error::usage("/data/broken.png: bad PNG");
    return {torch::full({1, 2, 3}, i % 251, torch::kUInt8), i % 3};
  }
  std::vector<std::int64_t> targets() const override {
    std::vector<std::int64_t> t;
    for (std::int64_t i = 0; i < n; ++i) t.push_back(i % 3);
    return t;
  }
};

// to_tensor plus noise from the sample's Rng: shows which draws each sample got.
struct Noisy : graft::Transform {
  torch::Tensor apply(const torch::Tensor& x, graft::Rng& rng) const override {
    auto y = x.to(torch::kFloat);
    for (int k = 0; k < 3; ++k) y = y + rng.uniform();
    return y;
  }
  bool random() const override { return true; }
};

std::vector<Batch> epoch(Loader& loader, std::int64_t e, std::int64_t first = 0) {
  loader.start(e, first);
  std::vector<Batch> out;
  while (auto b = loader.next()) out.push_back(std::move(*b));
  return out;
}

void same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  BOOST_REQUIRE_EQUAL(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    BOOST_TEST(torch::equal(a[i].inputs, b[i].inputs));
    BOOST_TEST(torch::equal(a[i].targets, b[i].targets));
    BOOST_TEST(a[i].indices == b[i].indices);
  }
}

LoaderOptions opts(std::int64_t batch, std::int64_t workers, std::int64_t prefetch = 2) {
  LoaderOptions o;
  o.batch_size = batch;
  o.workers = workers;
  o.prefetch = prefetch;
  o.seed = 42;
  return o;
}

}  // namespace

BOOST_AUTO_TEST_CASE(batches_do_not_depend_on_workers_or_prefetch) {
  auto data = std::make_shared<Counting>(103);
  std::vector<std::shared_ptr<graft::Transform>> t = {std::make_shared<Noisy>()};
  Loader ref(data, t, opts(8, 0));
  const auto want = epoch(ref, 3);
  BOOST_TEST(want.size() == 13u);
  BOOST_TEST(want.back().inputs.size(0) == 7);
  // each batch holds the epoch's order, in order; each sample got its own draws
  const auto order = ref.order(3);
  std::size_t k = 0;
  for (const auto& b : want) {
    BOOST_TEST(b.inputs.dtype() == torch::kFloat);
    BOOST_TEST(b.targets.dtype() == torch::kInt64);
    for (std::size_t j = 0; j < b.indices.size(); ++j, ++k) {
      const auto i = b.indices[j];
      BOOST_TEST(i == order[k]);
      BOOST_TEST(b.targets[static_cast<std::int64_t>(j)].item<std::int64_t>() == i % 3);
      graft::Rng rng(graft::Rng::seed_for(42, 3, static_cast<std::uint64_t>(i)));
      const float noise = static_cast<float>(i % 251) + static_cast<float>(rng.uniform()) +
                          static_cast<float>(rng.uniform()) + static_cast<float>(rng.uniform());
      BOOST_TEST(b.inputs[static_cast<std::int64_t>(j)][0][1][2].item<float>() == noise, boost::test_tools::tolerance(1e-4f));
    }
  }
  BOOST_TEST(k == 103u);
  for (std::int64_t workers : {0, 1, 3}) {
    for (std::int64_t prefetch : {1, 4}) {
      BOOST_TEST_CONTEXT("workers " << workers << " prefetch " << prefetch) {
        Loader l(data, t, opts(8, workers, prefetch));
        same(epoch(l, 3), want);
        same(epoch(l, 3), want);  // a second pass of the same epoch
      }
    }
  }
}

// What at::get_num_threads() says where each sample is transformed.
struct ThreadCount : graft::Transform {
  mutable std::mutex mutex;
  mutable std::set<int> seen;
  torch::Tensor apply(const torch::Tensor& x, graft::Rng&) const override {
    std::lock_guard<std::mutex> lock(mutex);
    seen.insert(at::get_num_threads());
    return x.to(torch::kFloat);
  }
};

BOOST_AUTO_TEST_CASE(workers_run_their_ops_on_one_thread_each) {
  // the workers are the loader's parallelism: no intra-op threads of their own beside the
  // training's; the caller's thread keeps its setting
  const int before = at::get_num_threads();
  at::set_num_threads(2);
  auto data = std::make_shared<Counting>(40);
  auto count = std::make_shared<ThreadCount>();
  Loader workers(data, {count}, opts(8, 2));
  epoch(workers, 0);
  BOOST_TEST((count->seen == std::set<int>{1}));
  count->seen.clear();
  Loader inline_(data, {count}, opts(8, 0));
  epoch(inline_, 0);
  BOOST_TEST((count->seen == std::set<int>{at::get_num_threads()}));
  BOOST_TEST(at::get_num_threads() == 2);
  at::set_num_threads(before);
}

BOOST_AUTO_TEST_CASE(start_mid_epoch_gives_the_rest_of_the_uninterrupted_epoch) {
  auto data = std::make_shared<Counting>(50);
  std::vector<std::shared_ptr<graft::Transform>> t = {std::make_shared<Noisy>()};
  Loader ref(data, t, opts(6, 0));
  const auto full = epoch(ref, 7);
  BOOST_TEST(full.size() == 9u);
  for (std::int64_t workers : {0, 2, 3}) {
    Loader l(data, t, opts(6, workers, 1));
    for (std::int64_t k : {0, 1, 4, 8, 9}) {
      BOOST_TEST_CONTEXT("workers " << workers << " from batch " << k) {
        same(epoch(l, 7, k), std::vector<Batch>(full.begin() + k, full.end()));
      }
    }
    // abandon an epoch half-way, then resume another one
    l.start(2);
    BOOST_TEST(l.next().has_value());
    same(epoch(l, 7, 5), std::vector<Batch>(full.begin() + 5, full.end()));
  }
  const auto e = one_line_error_of([&] { ref.start(7, 10); });
  BOOST_TEST(contains(e.what(), "cannot start at batch 10 of an epoch of 9 batches"), e.what());
}

BOOST_AUTO_TEST_CASE(orders_are_seeded_permutations_per_epoch) {
  auto data = std::make_shared<Counting>(1000);
  Loader a(data, {}, opts(10, 0)), b(data, {}, opts(10, 0));
  const auto o0 = a.order(0), o1 = a.order(1);
  BOOST_TEST(o0 != o1);
  BOOST_TEST(o0 == b.order(0));
  auto sorted = o0;
  std::sort(sorted.begin(), sorted.end());
  for (std::int64_t i = 0; i < 1000; ++i) BOOST_TEST_REQUIRE(sorted[static_cast<std::size_t>(i)] == i);
  auto other = opts(10, 0);
  other.seed = 43;
  BOOST_TEST(Loader(data, {}, other).order(0) != o0);
  other.shuffle = false;
  const auto plain = Loader(data, {}, other).order(5);
  BOOST_TEST(plain == sorted);
  // the fixed draws: a changed shuffle breaks resumed runs, so it is pinned here
  std::vector<std::int64_t> first = {o0[0], o0[1], o0[2]};
  BOOST_TEST_MESSAGE("first of epoch 0: " << first[0] << " " << first[1] << " " << first[2]);
  Loader c(std::make_shared<Counting>(5), {}, opts(1, 0));
  std::vector<std::int64_t> manual = {0, 1, 2, 3, 4};
  graft::Rng rng(graft::Rng::seed_for(42, 0, ~0ULL));
  for (std::int64_t i = 4; i > 0; --i) std::swap(manual[static_cast<std::size_t>(i)], manual[static_cast<std::size_t>(rng.integer(0, i))]);
  BOOST_TEST(c.order(0) == manual);
}

BOOST_AUTO_TEST_CASE(drop_last_and_sizes) {
  auto data = std::make_shared<Counting>(10);
  std::vector<std::shared_ptr<graft::Transform>> t = {std::make_shared<Noisy>()};
  Loader keep(data, t, opts(4, 2));
  BOOST_TEST(keep.size() == 10);
  BOOST_TEST(keep.batches_per_epoch() == 3);
  auto batches = epoch(keep, 0);
  BOOST_TEST(batches.size() == 3u);
  BOOST_TEST(batches[2].inputs.size(0) == 2);
  BOOST_TEST(batches[2].inputs.sizes() == torch::IntArrayRef({2, 1, 2, 3}));
  auto o = opts(4, 2);
  o.drop_last = true;
  Loader drop(data, t, o);
  BOOST_TEST(drop.batches_per_epoch() == 2);
  batches = epoch(drop, 0);
  BOOST_TEST(batches.size() == 2u);
  std::set<std::int64_t> seen;
  for (const auto& b : batches) {
    BOOST_TEST(b.inputs.size(0) == 4);
    seen.insert(b.indices.begin(), b.indices.end());
  }
  BOOST_TEST(seen.size() == 8u);
  // next() past the end keeps saying so; without start() it serves epoch 0
  BOOST_TEST(!drop.next().has_value());
  Loader fresh(data, t, o);
  const auto order = drop.order(0);
  BOOST_TEST(fresh.next()->indices == std::vector<std::int64_t>(order.begin(), order.begin() + 4));
  const auto bad = one_line_error_of([&] { Loader(data, t, opts(0, 0)); });
  BOOST_TEST(contains(bad.what(), "batch_size must be at least 1"), bad.what());
}

BOOST_AUTO_TEST_CASE(a_worker_error_is_rethrown_with_the_sample) {
  for (std::int64_t workers : {0, 1, 3}) {
    BOOST_TEST_CONTEXT("workers " << workers) {
      auto data = std::make_shared<Counting>(40);
      data->bad = 17;
      Loader l(data, {std::make_shared<Noisy>()}, opts(4, workers, 2));
      l.start(0);
      std::int64_t served = 0;
      const auto e = one_line_error_of([&] {
        while (l.next()) ++served;
      });
      BOOST_TEST(contains(e.what(), "sample 17: /data/broken.png: bad PNG"), e.what());
      BOOST_TEST(e.exit_code() == 2);
      const auto order = l.order(0);
      const auto pos = std::find(order.begin(), order.end(), 17) - order.begin();
      BOOST_TEST(served == pos / 4);  // every batch before the broken one was served
      // the loader stays usable: another epoch starts afresh
      l.start(1, 0);
    }
  }
  // images of different sizes in one batch, and uint8 output, are named
  struct Ragged : Counting {
    using Counting::Counting;
    graft::Sample get(std::int64_t i) const override { return {torch::zeros({1, 2, 2 + i}), 0}; }
  };
  Loader ragged(std::make_shared<Ragged>(4), {}, opts(4, 0));
  auto e = one_line_error_of([&] { ragged.next(); });
  BOOST_TEST(contains(e.what(), "resize or crop to one size"), e.what());
  Loader raw(std::make_shared<Counting>(4), {}, opts(4, 1));
  e = one_line_error_of([&] { raw.next(); });
  BOOST_TEST(contains(e.what(), ": the transforms give uint8 images; end them with to_tensor"), e.what());
}

BOOST_AUTO_TEST_CASE(destroying_a_busy_loader_joins_its_workers) {
  auto data = std::make_shared<Counting>(2000);
  for (int k = 0; k < 5; ++k) {
    Loader l(data, {std::make_shared<Noisy>()}, opts(3, 3, 1));
    l.start(k);
    l.next();
  }  // no hang, no crash
  BOOST_TEST(true);
}

// ---- build_data --------------------------------------------------------------------------

namespace {

graft::Recipe recipe(const std::string& data, int seed = 0) {
  graft::Recipe r;
  r.file = "recipe.yaml";
  r.root = graft::parse_yaml_text("seed: " + std::to_string(seed) + "\nmodel: {backbone: lenet}\ndata:\n" + data,
                                  "recipe.yaml");
  return r;
}

graft::DataPlan build(const std::string& data, int seed = 0) { return graft::build_data(recipe(data, seed), registry()); }

const std::string kSynthetic = "  dataset: {name: synthetic, train_size: 1000, test_size: 200}\n";

std::vector<std::int64_t> counts(const graft::Dataset& d, std::int64_t k) {
  std::vector<std::int64_t> c(static_cast<std::size_t>(k), 0);
  for (auto t : d.targets()) ++c.at(static_cast<std::size_t>(t));
  return c;
}

}  // namespace

BOOST_AUTO_TEST_CASE(data_section_defaults) {
  const auto plan = build(kSynthetic);
  BOOST_TEST(plan.train->size() == 1000);
  BOOST_TEST(plan.test->size() == 200);
  BOOST_TEST(plan.val == plan.test);  // val: test
  BOOST_TEST(plan.classes.size() == 10u);
  BOOST_TEST(plan.sample_shape == (std::vector<std::int64_t>{1, 28, 28}));
  BOOST_TEST(plan.train_transforms.size() == 1u);
  BOOST_TEST(plan.eval_transforms.size() == 1u);
  BOOST_TEST(plan.train_options.batch_size == 64);
  BOOST_TEST(plan.train_options.shuffle);
  BOOST_TEST(!plan.eval_options.shuffle);
  BOOST_TEST(plan.train_options.workers >= 1);  // auto
  BOOST_TEST(contains(plan.description, "train: 1000 samples (synthetic train, 100 per class)"), plan.description);
  BOOST_TEST(contains(plan.description, "test: 200 samples"), plan.description);
  Loader l(plan.train, plan.train_transforms, plan.train_options);
  const auto b = l.next();
  BOOST_TEST(b->inputs.sizes() == torch::IntArrayRef({64, 1, 28, 28}));
  BOOST_TEST(b->inputs.max().item<float>() <= 1.0f);
}

BOOST_AUTO_TEST_CASE(classes_per_class_and_a_fraction_val) {
  const std::string data = kSynthetic +
                           "  classes: [7, 2, 5]\n  val: 0.1\n  per_class: 20\n  batch_size: 16\n  eval_batch_size: 50\n"
                           "  workers: 0\n  transforms: [{name: random_crop, size: 28, padding: 2}, to_tensor]\n";
  const auto plan = build(data, 3);
  BOOST_TEST(plan.classes == (std::vector<std::string>{"7", "2", "5"}));
  BOOST_TEST(plan.train->size() == 60);
  BOOST_TEST(counts(*plan.train, 3) == (std::vector<std::int64_t>{20, 20, 20}));
  BOOST_TEST(plan.val->size() == 30);  // 10% of 100 per class
  BOOST_TEST(counts(*plan.val, 3) == (std::vector<std::int64_t>{10, 10, 10}));
  BOOST_TEST(plan.test->size() == 60);
  BOOST_TEST(counts(*plan.test, 3) == (std::vector<std::int64_t>{20, 20, 20}));
  BOOST_TEST(plan.eval_transforms.size() == 1u);  // to_tensor: random_crop left out
  BOOST_TEST(plan.eval_options.batch_size == 50);
  BOOST_TEST(plan.train_options.workers == 0);
  BOOST_TEST(plan.train_options.seed == 3u);

  // relabelled: synthetic sample i has class i % 10, so class 7 -> 0, 2 -> 1, 5 -> 2; the
  // images of train and val never coincide (each synthetic image is unique)
  auto images = [](const graft::Dataset& d) {
    std::vector<torch::Tensor> v;
    for (std::int64_t i = 0; i < d.size(); ++i) v.push_back(d.get(i).input);
    return torch::stack(v).flatten(1);
  };
  const auto tr = images(*plan.train), va = images(*plan.val);
  const auto equal_pairs = (tr.unsqueeze(1) == va.unsqueeze(0)).all(2).sum().item<std::int64_t>();
  BOOST_TEST(equal_pairs == 0);
  auto full = build(kSynthetic + "  workers: 0\n");
  std::map<std::int64_t, std::int64_t> original;  // image hash -> original class
  for (std::int64_t i = 0; i < full.train->size(); ++i) {
    const auto s = full.train->get(i);
    original[s.input.to(torch::kInt64).mul(torch::arange(784).view({1, 28, 28}) % 97 + 1).sum().item<std::int64_t>()] = s.target;
  }
  const std::int64_t back[] = {7, 2, 5};
  for (std::int64_t i = 0; i < plan.train->size(); ++i) {
    const auto s = plan.train->get(i);
    const auto h = s.input.to(torch::kInt64).mul(torch::arange(784).view({1, 28, 28}) % 97 + 1).sum().item<std::int64_t>();
    BOOST_TEST_REQUIRE(original.count(h) == 1u);
    BOOST_TEST(original[h] == back[s.target]);
  }

  // the same seed picks the same samples; another seed others
  const auto again = build(data, 3), other = build(data, 4);
  BOOST_TEST(torch::equal(images(*again.val), va));
  BOOST_TEST(!torch::equal(images(*other.val), va));
  BOOST_TEST(torch::equal(images(*again.train), tr));
  BOOST_TEST(contains(plan.description, "val: 30 samples (synthetic 0.1 of train, 10 per class)"), plan.description);
  BOOST_TEST(contains(plan.description, "classes (3): 7, 2, 5"), plan.description);
}

BOOST_AUTO_TEST_CASE(fashion_mnist_subset) {
  const auto plan = build("  dataset: fashion_mnist\n  classes: [5, 6, 7, 8, 9]\n  per_class: 50\n  val: none\n");
  BOOST_TEST(plan.train->size() == 250);
  BOOST_TEST(!plan.val);
  BOOST_TEST(plan.test->size() == 5000);
  BOOST_TEST(plan.classes == (std::vector<std::string>{"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}));
  BOOST_TEST(counts(*plan.train, 5) == (std::vector<std::int64_t>{50, 50, 50, 50, 50}));
}

BOOST_AUTO_TEST_CASE(an_image_folder_without_a_test_split) {
  const auto dir = graft::test::temp_dir("loader-folder");
  const auto r = graft::test::run(std::string(GRAFT_PYTHON) + " " + GRAFT_SOURCE_DIR + "/tests/plugins/data_oracle.py folder " +
                                  dir.string() + " " + (dir / "want.pth").string());
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  const std::string data = "  dataset: {name: image_folder, train: " + (dir / "train").string() +
                           ", mode: rgb}\n  transforms: [{name: resize, size: [8, 8]}, to_tensor]\n  workers: 2\n";
  auto plan = build(data);
  BOOST_TEST(plan.train->size() == 10);
  BOOST_TEST(!plan.val);  // val: test by default, and there is no test split
  BOOST_TEST(!plan.test);
  BOOST_TEST(plan.eval_transforms.size() == 2u);
  BOOST_TEST(plan.sample_shape == (std::vector<std::int64_t>{3, 8, 8}));
  BOOST_TEST(contains(plan.description, "val: none"), plan.description);
  Loader l(plan.train, plan.train_transforms, plan.train_options);
  BOOST_TEST(l.next()->inputs.sizes() == torch::IntArrayRef({10, 3, 8, 8}));
  // a stratified half: cat 4 -> 2, dog 5 -> 3 (2.5 rounded), emu 1 -> 0 (every class keeps a training sample)
  plan = build(data + "  val: 0.5\n");
  BOOST_TEST(counts(*plan.val, 3) == (std::vector<std::int64_t>{2, 3, 0}));
  BOOST_TEST(counts(*plan.train, 3) == (std::vector<std::int64_t>{2, 2, 1}));
  const auto e = one_line_error_of([&] { build(data + "  test_split: test\n"); });
  BOOST_TEST(contains(e.what(), "data.test_split: unknown split 'test' of dataset image_folder (available: train)"), e.what());
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(data_section_errors_name_the_key) {
  auto expect = [](const std::string& data, const std::string& key, const std::string& what) {
    const auto e = one_line_error_of([&] { build(data); });
    BOOST_TEST(e.exit_code() == 2);
    BOOST_TEST(contains(e.what(), "recipe.yaml:"), e.what());
    BOOST_TEST(contains(e.what(), key), e.what());
    BOOST_TEST(contains(e.what(), what), e.what());
  };
  expect(kSynthetic + "  train_split: training\n", "data.train_split",
         "unknown split 'training' of dataset synthetic (available: train, test)");
  expect(kSynthetic + "  val: holdout\n", "data.val", "unknown split 'holdout'");
  expect(kSynthetic + "  val: 1.5\n", "data.val", "between 0 and 1");
  expect(kSynthetic + "  classes: [1, 10]\n", "data.classes.1", "class 10 is out of range: synthetic has 10 classes (0..9)");
  expect(kSynthetic + "  classes: [1, 1]\n", "data.classes.1", "listed twice");
  expect(kSynthetic + "  per_class: 95\n  val: 0.1\n", "data.per_class",
         "95 samples per class, but class 0 (0) has only 90 training samples after the val hold-out");
  expect(kSynthetic + "  transforms: [{name: random_crop, size: 24}, to_tensor]\n", "data.transforms",
         "give [1, 28, 28] images but training gets [1, 24, 24]; write data.eval_transforms");
  expect(kSynthetic + "  transforms: [to_tensor]\n  eval_transforms: [{name: resize, size: 32}, to_tensor]\n",
         "data.eval_transforms", "give [1, 32, 32] images but training gets [1, 28, 28]");
  expect(kSynthetic + "  transforms: [{name: center_crop, size: 20}]\n", "data.transforms",
         "the training transforms end with uint8 images; add to_tensor");
  expect(kSynthetic + "  transforms: [{name: normalize, mean: [0.5], std: [0.5]}, to_tensor]\n", "data.transforms.0",
         "normalize: needs a float image");
  expect(kSynthetic + "  transforms: [to_tensr]\n", "data.transforms.0", "to_tensor");
  expect(kSynthetic + "  workers: many\n", "data.workers", "expected");
  expect(kSynthetic + "  batch_size: 0\n", "data.batch_size", "must be >= 1, got 0");
  expect(kSynthetic + "  batchsize: 3\n", "data", "did you mean 'batch_size'");
  expect("  dataset: {name: fashion_mnist, root: /nonexistent}\n", "data.dataset", "/nonexistent");
  const auto e = one_line_error_of([&] {
    graft::Recipe r;
    r.root = graft::parse_yaml_text("seed: 0\nmodel: {backbone: lenet}\n", "recipe.yaml");
    graft::build_data(r, registry());
  });
  BOOST_TEST(contains(e.what(), "no data: section"), e.what());
}

// Not a check: `test_loader --run_test=throughput` prints images per second on
// Fashion-MNIST for 0, 1 and 2 workers: random_crop + flip at 28x28, and the transfer
// learning pipeline (resize to 224, 3 channels, normalize) on the first 64 batches.
BOOST_AUTO_TEST_CASE(throughput, *boost::unit_test::disabled()) {
  const std::vector<std::pair<std::string, std::int64_t>> pipelines = {
      {"[{name: random_crop, size: 28, padding: 4}, random_horizontal_flip, to_tensor, "
       "{name: normalize, mean: [0.286], std: [0.353]}]", 1 << 30},
      {"[{name: resize, size: 224}, grayscale_to_rgb, random_horizontal_flip, to_tensor, "
       "{name: normalize, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}]", 64},
  };
  for (const auto& [transforms, max_batches] : pipelines) {
    for (std::int64_t workers : {0, 1, 2}) {
      const auto plan = build("  dataset: fashion_mnist\n  batch_size: 128\n  workers: " + std::to_string(workers) +
                              "\n  transforms: " + transforms + "\n");
      Loader l(plan.train, plan.train_transforms, plan.train_options);
      const auto t0 = std::chrono::steady_clock::now();
      std::int64_t n = 0, batches = 0;
      l.start(0);
      while (batches++ < max_batches) {
        auto b = l.next();
        if (!b) break;
        n += b->inputs.size(0);
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      BOOST_TEST_MESSAGE(transforms.substr(0, 40) << "... workers " << workers << ": " << n << " images in " << s
                                               << " s = " << n / s << " img/s");
    }
  }
}

// ---- a rank's share (multi-process runs) ---------------------------------------------------

namespace {

std::vector<std::int64_t> served(Loader& loader, std::int64_t e) {
  std::vector<std::int64_t> out;
  for (const auto& b : epoch(loader, e)) out.insert(out.end(), b.indices.begin(), b.indices.end());
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(ranks_are_dealt_as_torch_distributed_sampler_deals) {
  // 11 samples over 3 ranks: the epoch's order padded to 12 by repeating its start, rank r
  // takes every third from the r-th; the samples and their transforms are the 1-rank run's
  auto data = std::make_shared<Counting>(11);
  LoaderOptions one;
  one.batch_size = 2;
  one.seed = 9;
  Loader alone(data, {std::make_shared<Noisy>()}, one);
  auto order = alone.order(1);
  order.push_back(order[0]);
  std::vector<torch::Tensor> alone_inputs;
  for (const auto& b : epoch(alone, 1)) alone_inputs.push_back(b.inputs);
  const auto alone_all = torch::cat(alone_inputs);
  for (int r = 0; r < 3; ++r) {
    LoaderOptions o = one;
    o.rank = r;
    o.world = 3;
    Loader mine(data, {std::make_shared<Noisy>()}, o);
    BOOST_TEST(mine.batches_per_epoch() == 2);  // 4 samples each, batch 2
    BOOST_TEST(mine.epoch_samples() == 12);
    std::vector<std::int64_t> expected;
    for (std::size_t k = static_cast<std::size_t>(r); k < order.size(); k += 3) expected.push_back(order[k]);
    BOOST_TEST(served(mine, 1) == expected, boost::test_tools::per_element());
    // the same sample gets the same random draws on any rank
    const auto batches = epoch(mine, 1);
    for (std::size_t j = 0; j < 2; ++j) {
      const std::int64_t at = static_cast<std::int64_t>(r) + 3 * static_cast<std::int64_t>(j);  // position in the order
      if (at < 11) BOOST_TEST(torch::equal(batches[0].inputs[static_cast<std::int64_t>(j)], alone_all[at]));
    }
  }
}

BOOST_AUTO_TEST_CASE(an_evaluation_share_serves_every_sample_once) {
  auto data = std::make_shared<Counting>(11);
  std::multiset<std::int64_t> all;
  for (int r = 0; r < 3; ++r) {
    LoaderOptions o;
    o.batch_size = 2;
    o.shuffle = false;
    o.pad = false;
    o.rank = r;
    o.world = 3;
    Loader mine(data, {std::make_shared<Noisy>()}, o);
    for (auto i : served(mine, 0)) all.insert(i);
  }
  BOOST_TEST(all.size() == 11u);
  for (std::int64_t i = 0; i < 11; ++i) BOOST_TEST(all.count(i) == 1u);
}

BOOST_AUTO_TEST_CASE(a_new_world_size_goes_on_from_the_same_sample) {
  // 2 ranks of batch 2 served 2 batches each (8 samples of the order); 1 rank of batch 4
  // goes on from the 9th
  auto data = std::make_shared<Counting>(20);
  LoaderOptions two;
  two.batch_size = 2;
  two.seed = 4;
  two.world = 2;
  Loader before(data, {std::make_shared<Noisy>()}, two);
  before.start(0);
  before.next();
  before.next();
  BOOST_TEST(before.samples_done(1) == 8);
  LoaderOptions one;
  one.batch_size = 4;
  one.seed = 4;
  Loader after(data, {std::make_shared<Noisy>()}, one);
  const auto first = after.start_at_sample(0, 8);
  BOOST_TEST(first == 2);  // 3 batches left of 5: the epoch still ends at batch 4
  std::vector<std::int64_t> rest;
  while (auto b = after.next()) rest.insert(rest.end(), b->indices.begin(), b->indices.end());
  const auto order = after.order(0);
  BOOST_TEST(rest == std::vector<std::int64_t>(order.begin() + 8, order.end()), boost::test_tools::per_element());
  BOOST_TEST(after.samples_done(first + 2) == 20);
}
