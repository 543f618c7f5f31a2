// The data plugins (plugins/data) against Python: Fashion-MNIST as gzip + numpy and
// torchvision read it, images as PIL and torchvision's ImageFolder decode them, and every
// transform against torchvision.transforms.functional on the same tensor. Also CIFAR-10
// files written here, the synthetic dataset, and the errors a broken file gets.
#define BOOST_TEST_MODULE data
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "graft/data.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "graft/host/serialize.h"
#include "support/draws.h"
#include "support/plugins.h"
#include "support/run.h"

namespace fs = std::filesystem;
using graft::Kind;
using graft::test::contains;
using json = nlohmann::json;
using graft::test::one_line_error_of;
using graft::test::registry;

namespace {

const std::string kFashion = "/usr/share/datasets/fashion-mnist";

std::shared_ptr<graft::DataSource> source(const std::string& yaml) {
  return registry().create<Kind::dataset>(graft::test::yaml(yaml));
}

std::shared_ptr<graft::Transform> transform(const std::string& yaml) {
  return registry().create<Kind::transform>(graft::test::yaml(yaml));
}

void python(const std::string& args) {
  const auto r = graft::test::run(std::string(GRAFT_PYTHON) + " " + GRAFT_SOURCE_DIR + "/tests/plugins/data_oracle.py " + args);
  BOOST_REQUIRE_MESSAGE(r.code == 0, "oracle failed: " + r.err);
}

std::map<std::string, torch::Tensor> load(const std::string& path) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : graft::load_state_dict(path)) out[item.key()] = item.value();
  return out;
}

void write_bytes(const fs::path& p, const std::vector<std::uint8_t>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

std::vector<std::uint8_t> read_bytes(const fs::path& p) {
  const auto s = graft::test::slurp(p);
  return {s.begin(), s.end()};
}

}  // namespace

// ---- IDX ---------------------------------------------------------------------------------

struct Fashion {
  fs::path plain = graft::test::temp_dir("idx");
  std::map<std::string, torch::Tensor> want;
  Fashion() {
    for (const char* f : {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}) {
      const auto r = graft::test::run("gzip -dc " + kFashion + "/" + f + ".gz > " + (plain / f).string());
      BOOST_REQUIRE(r.code == 0);
    }
    python("idx " + kFashion + " " + plain.string() + " " + (plain / "want.pth").string());
    want = load((plain / "want.pth").string());
  }
  ~Fashion() { fs::remove_all(plain); }
};

BOOST_FIXTURE_TEST_SUITE(idx, Fashion)

BOOST_AUTO_TEST_CASE(fashion_mnist_equals_python) {
  auto src = source("fashion_mnist");
  BOOST_TEST(src->splits() == (std::vector<std::string>{"train", "test"}));
  for (const std::string split : {"train", "test"}) {
    auto d = src->open(split);
    BOOST_TEST(d->size() == want[split + "_labels"].size(0));
    const auto t = d->targets();
    BOOST_TEST(torch::equal(torch::tensor(t), want[split + "_labels"]));
    std::vector<std::int64_t> sums;
    for (std::int64_t i = 0; i < d->size(); ++i) {
      const auto s = d->get(i);
      BOOST_REQUIRE(s.target == t[static_cast<std::size_t>(i)]);
      sums.push_back(s.input.sum().item<std::int64_t>());
    }
    BOOST_TEST(torch::equal(torch::tensor(sums), want[split + "_sums"]));
    for (std::int64_t i : {std::int64_t(0), std::int64_t(1), std::int64_t(777), d->size() - 1}) {
      const auto s = d->get(i);
      BOOST_TEST(s.input.dtype() == torch::kUInt8);
      BOOST_TEST(s.input.sizes() == torch::IntArrayRef({1, 28, 28}));
      BOOST_TEST(torch::equal(s.input, want[split + "_" + std::to_string(i)]));
    }
    BOOST_TEST(d->classes().size() == 10u);
    BOOST_TEST(d->classes()[0] == "T-shirt/top");
    BOOST_TEST(d->classes()[9] == "Ankle boot");
  }
}

BOOST_AUTO_TEST_CASE(gz_and_plain_files_give_the_same_samples) {
  auto gz = source("fashion_mnist")->open("test");
  auto raw = source("{name: fashion_mnist, root: " + plain.string() + "}")->open("test");
  BOOST_TEST(gz->targets() == raw->targets());
  std::vector<torch::Tensor> a, b;
  for (std::int64_t i = 0; i < raw->size(); ++i) {
    a.push_back(gz->get(i).input);
    b.push_back(raw->get(i).input);
  }
  BOOST_TEST(torch::equal(torch::stack(a), torch::stack(b)));
  BOOST_TEST(torch::equal(torch::stack(b), want["plain_test_images"]));  // torchvision's read_image_file
  BOOST_TEST(torch::equal(torch::tensor(raw->targets()), want["plain_test_labels"]));
  // mnist reads the same layout
  auto m = source("{name: mnist, root: " + plain.string() + "}")->open("test");
  BOOST_TEST(torch::equal(m->get(5).input, b[5]));
  BOOST_TEST(m->classes()[3] == "3");
}

BOOST_AUTO_TEST_CASE(broken_files_are_usage_errors_naming_the_file) {
  const auto images = plain / "t10k-images-idx3-ubyte";
  const auto labels = plain / "t10k-labels-idx1-ubyte";
  const auto good_images = read_bytes(images), good_labels = read_bytes(labels);
  auto open = [&] { source("{name: fashion_mnist, root: " + plain.string() + "}")->open("test"); };
  auto expect = [&](const fs::path& file, const std::string& what) {
    const auto e = one_line_error_of(open);
    BOOST_TEST(e.exit_code() == 2);
    BOOST_TEST(contains(e.what(), file.string()), e.what());
    BOOST_TEST(contains(e.what(), what), e.what());
  };

  write_bytes(images, {good_images.begin(), good_images.begin() + 5000});
  expect(images, "truncated: 5000 bytes, the header promises 7840016");
  write_bytes(images, {good_images.begin(), good_images.begin() + 10});
  expect(images, "shorter than the IDX header");
  auto bad = good_images;
  bad[3] = 0x01;
  write_bytes(images, bad);
  expect(images, "not an IDX images file (magic 0x00000801, expected 0x00000803)");
  bad = good_images;
  bad.push_back(0);
  write_bytes(images, bad);
  expect(images, "1 bytes after the data");
  write_bytes(images, good_images);

  auto few = std::vector<std::uint8_t>{0, 0, 8, 1, 0, 0, 0, 5, 1, 2, 3, 4, 5};
  write_bytes(labels, few);
  expect(labels, "5 labels for 10000 images");
  auto wrong = good_labels;
  wrong[8 + 42] = 10;
  write_bytes(labels, wrong);
  expect(labels, "label 10 of sample 42 is not a class");
  write_bytes(labels, good_labels);

  // a cut gzip stream
  fs::remove(images);
  const auto gz = read_bytes(kFashion + "/t10k-images-idx3-ubyte.gz");
  write_bytes(plain / "t10k-images-idx3-ubyte.gz", {gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2)});
  expect(plain / "t10k-images-idx3-ubyte.gz", "not a valid gzip file");
  fs::remove(plain / "t10k-images-idx3-ubyte.gz");
  expect(images, "neither");

  const auto e = one_line_error_of([&] { source("{name: fashion_mnist, root: /nonexistent}"); });
  BOOST_TEST(contains(e.what(), "test.yaml:1:"), e.what());
  BOOST_TEST(contains(e.what(), "root: '/nonexistent' is not a directory"), e.what());
  const auto split = one_line_error_of([&] { source("fashion_mnist")->open("val"); });
  BOOST_TEST(contains(split.what(), "no split 'val' (available: train, test)"), split.what());
  const auto root = one_line_error_of([&] { source("mnist"); });
  BOOST_TEST(contains(root.what(), "missing required key 'root'"), root.what());
}

BOOST_AUTO_TEST_SUITE_END()

// ---- CIFAR-10 ----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(cifar10_reads_records) {
  const auto dir = graft::test::temp_dir("cifar");
  const auto bin = dir / "cifar-10-batches-bin";
  fs::create_directories(bin);
  torch::manual_seed(3);
  std::vector<std::vector<std::uint8_t>> records;  // train then test
  auto write_batch = [&](const std::string& name, int n) {
    std::vector<std::uint8_t> bytes;
    for (int r = 0; r < n; ++r) {
      const auto rec = torch::randint(0, 256, {3073}, torch::kUInt8);
      std::vector<std::uint8_t> v(rec.data_ptr<std::uint8_t>(), rec.data_ptr<std::uint8_t>() + 3073);
      v[0] = static_cast<std::uint8_t>(records.size() % 10);
      records.push_back(v);
      bytes.insert(bytes.end(), v.begin(), v.end());
    }
    write_bytes(bin / name, bytes);
  };
  for (int i = 1; i <= 5; ++i) write_batch("data_batch_" + std::to_string(i) + ".bin", i);
  write_batch("test_batch.bin", 4);
  std::ofstream(bin / "batches.meta.txt") << "plane\ncar\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";

  auto src = source("{name: cifar10, root: " + dir.string() + "}");  // the parent works too
  auto train = src->open("train"), test = src->open("test");
  BOOST_TEST(train->size() == 15);
  BOOST_TEST(test->size() == 4);
  BOOST_TEST(train->classes()[1] == "car");
  for (std::int64_t i = 0; i < 19; ++i) {
    const auto& d = i < 15 ? train : test;
    const auto s = d->get(i < 15 ? i : i - 15);
    const auto& rec = records[static_cast<std::size_t>(i)];
    // Python: np.frombuffer(record[1:], np.uint8).reshape(3, 32, 32)
    const auto want = torch::from_blob(const_cast<std::uint8_t*>(rec.data()) + 1, {3, 32, 32}, torch::kUInt8);
    BOOST_TEST(torch::equal(s.input, want));
    BOOST_TEST(s.target == rec[0]);
    BOOST_TEST(d->targets()[static_cast<std::size_t>(i < 15 ? i : i - 15)] == rec[0]);
  }

  auto test_bytes = read_bytes(bin / "test_batch.bin");
  write_bytes(bin / "test_batch.bin", {test_bytes.begin(), test_bytes.end() - 1});
  auto e = one_line_error_of([&] { src->open("test"); });
  BOOST_TEST(contains(e.what(), (bin / "test_batch.bin").string() + ": 12291 bytes, not a whole number"), e.what());
  test_bytes[3073] = 11;
  write_bytes(bin / "test_batch.bin", test_bytes);
  e = one_line_error_of([&] { src->open("test"); });
  BOOST_TEST(contains(e.what(), "label 11 of record 1"), e.what());
  fs::remove(bin / "data_batch_3.bin");
  e = one_line_error_of([&] { src->open("train"); });
  BOOST_TEST(contains(e.what(), "data_batch_3.bin: no such file"), e.what());
  BOOST_TEST(e.exit_code() == 2);
  fs::remove_all(dir);
}

// ---- image folders -----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(image_folder_decodes_as_pil_and_lists_as_torchvision) {
  const auto dir = graft::test::temp_dir("folder");
  python("folder " + dir.string() + " " + (dir / "want.pth").string());
  auto want = load((dir / "want.pth").string());
  for (const std::string mode : {"keep", "rgb", "gray"}) {
    auto src = source("{name: image_folder, root: " + dir.string() + ", mode: " + mode + "}");
    BOOST_TEST(src->splits() == (std::vector<std::string>{"train", "test"}));
    for (const std::string split : {"train", "test"}) {
      auto d = src->open(split);
      BOOST_TEST(d->classes() == (std::vector<std::string>{"cat", "dog", "emu"}));
      BOOST_TEST(torch::equal(torch::tensor(d->targets()), want[split + "_targets"]));
      for (std::int64_t i = 0; i < d->size(); ++i) {
        const auto s = d->get(i);
        const auto& w = want[split + "_" + std::to_string(i) + "_" + mode];
        BOOST_TEST_CONTEXT(split << " sample " << i << " mode " << mode) {
          BOOST_TEST(s.input.sizes() == w.sizes());
          BOOST_TEST(s.input.dtype() == torch::kUInt8);
          // PIL and graft both decode with the system's libpng / libjpeg-turbo
          BOOST_TEST(torch::equal(s.input, w));
        }
      }
    }
  }
  // explicit split directories, and a root without train/test is the train split
  auto d = source("{name: image_folder, root: " + (dir / "test").string() + "}");
  BOOST_TEST(d->splits() == std::vector<std::string>{"train"});
  BOOST_TEST(d->open("train")->size() == 2);
  d = source("{name: image_folder, train: " + (dir / "train").string() + ", val: " + (dir / "test").string() + "}");
  BOOST_TEST(d->splits() == (std::vector<std::string>{"train", "val"}));
  BOOST_TEST(d->open("val")->classes().size() == 3u);

  // errors name the file
  const auto broken = dir / "train" / "cat" / "b.png";
  auto bytes = read_bytes(broken);
  write_bytes(broken, {bytes.begin(), bytes.begin() + 60});
  auto cat = source("{name: image_folder, root: " + dir.string() + "}")->open("train");
  auto e = one_line_error_of([&] { cat->get(1); });
  BOOST_TEST(contains(e.what(), broken.string() + ": bad PNG"), e.what());
  BOOST_TEST(e.exit_code() == 2);
  write_bytes(broken, {'h', 'e', 'l', 'l', 'o'});
  e = one_line_error_of([&] { cat->get(1); });
  BOOST_TEST(contains(e.what(), broken.string() + ": neither a PNG nor a JPEG file"), e.what());
  const auto jpg = dir / "train" / "cat" / "z.jpg";
  bytes = read_bytes(jpg);
  write_bytes(jpg, {bytes.begin(), bytes.begin() + 40});
  e = one_line_error_of([&] { cat->get(2); });
  BOOST_TEST(contains(e.what(), jpg.string() + ": bad JPEG"), e.what());

  fs::create_directories(dir / "test" / "yak");
  e = one_line_error_of([&] { source("{name: image_folder, root: " + dir.string() + "}")->open("test"); });
  BOOST_TEST(contains(e.what(), "yak: a class folder that"), e.what());
  fs::create_directories(dir / "train" / "zebra");
  e = one_line_error_of([&] { source("{name: image_folder, root: " + dir.string() + "}")->open("train"); });
  BOOST_TEST(contains(e.what(), "zebra: no .png, .jpg or .jpeg images"), e.what());
  e = one_line_error_of([&] { source("{name: image_folder, mode: bgr, root: " + dir.string() + "}"); });
  BOOST_TEST(contains(e.what(), "test.yaml:1:"), e.what());
  BOOST_TEST(contains(e.what(), "mode: must be one of: keep, rgb, gray; got 'bgr'"), e.what());
  fs::remove_all(dir);
}

// ---- synthetic ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(synthetic_is_deterministic_and_learnable) {
  const std::string spec = "{name: synthetic, num_classes: 4, shape: [3, 8, 6], train_size: 400, test_size: 100, seed: 5}";
  auto a = source(spec)->open("train"), b = source(spec)->open("train");
  auto other = source("{name: synthetic, num_classes: 4, shape: [3, 8, 6], seed: 6}")->open("train");
  auto test = source(spec)->open("test");
  BOOST_TEST(a->size() == 400);
  BOOST_TEST(test->size() == 100);
  BOOST_TEST(torch::equal(a->get(17).input, b->get(17).input));
  BOOST_TEST(!torch::equal(a->get(17).input, other->get(17).input));
  BOOST_TEST(!torch::equal(a->get(17).input, test->get(17).input));
  BOOST_TEST(a->get(17).input.sizes() == torch::IntArrayRef({3, 8, 6}));
  BOOST_TEST(a->get(17).target == 1);
  // nearest class mean, fitted on train, classifies the test split
  auto means = torch::zeros({4, 144});
  for (std::int64_t i = 0; i < a->size(); ++i) {
    const auto s = a->get(i);
    means[s.target] += s.input.to(torch::kFloat).flatten() / 100;
  }
  std::int64_t right = 0;
  for (std::int64_t i = 0; i < test->size(); ++i) {
    const auto s = test->get(i);
    const auto d = (means - s.input.to(torch::kFloat).flatten()).pow(2).sum(1);
    right += d.argmin().item<std::int64_t>() == s.target;
  }
  BOOST_TEST(right >= 95);
}

// ---- transforms against torchvision -------------------------------------------------------

BOOST_AUTO_TEST_CASE(transforms_match_torchvision) {
  const auto dir = graft::test::temp_dir("transforms");
  torch::manual_seed(11);
  graft::StateDict inputs;
  inputs.insert("u3", torch::randint(0, 256, {3, 17, 23}, torch::kUInt8));
  inputs.insert("u1", torch::randint(0, 256, {1, 28, 28}, torch::kUInt8));
  inputs.insert("f3", torch::rand({3, 17, 23}));
  inputs.insert("f1", torch::rand({1, 20, 13}));

  struct Case {
    std::string id, yaml, input;
    json oracle;
    std::uint64_t seed = 1;
    double tol = 0;
  };
  std::vector<Case> cases = {
      {"to_tensor", "to_tensor", "u3", {{"op", "to_tensor"}}},
      {"normalize", "{name: normalize, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}", "f3",
       {{"op", "normalize"}, {"args", {{"mean", {0.485, 0.456, 0.406}}, {"std", {0.229, 0.224, 0.225}}}}}},
      {"normalize_one", "{name: normalize, mean: [0.5], std: [0.25]}", "f1",
       {{"op", "normalize"}, {"args", {{"mean", {0.5}}, {"std", {0.25}}}}}},
      {"resize_short_u8", "{name: resize, size: 10}", "u3",
       {{"op", "resize"}, {"args", {{"size", 10}, {"interpolation", "bilinear"}}}}},
      {"resize_up_u8", "{name: resize, size: 32}", "u1",
       {{"op", "resize"}, {"args", {{"size", 32}, {"interpolation", "bilinear"}}}}},
      {"resize_hw_float", "{name: resize, size: [31, 20]}", "f3",
       {{"op", "resize"}, {"args", {{"size", {31, 20}}, {"interpolation", "bilinear"}}}}},
      {"resize_tall_float", "{name: resize, size: 7}", "f1",
       {{"op", "resize"}, {"args", {{"size", 7}, {"interpolation", "bilinear"}}}}},
      {"resize_nearest", "{name: resize, size: [9, 40], interpolation: nearest}", "u3",
       {{"op", "resize"}, {"args", {{"size", {9, 40}}, {"interpolation", "nearest"}}}}},
      {"center_crop", "{name: center_crop, size: 9}", "u3", {{"op", "center_crop"}, {"args", {{"size", {9, 9}}}}}},
      {"center_crop_odd", "{name: center_crop, size: [14, 20]}", "f3",
       {{"op", "center_crop"}, {"args", {{"size", {14, 20}}}}}},
      {"center_crop_pad", "{name: center_crop, size: [30, 25]}", "u3",
       {{"op", "center_crop"}, {"args", {{"size", {30, 25}}}}}},
  };
  // RandomCrop: the draws are the top then the left, each integer(0, padded - size).
  struct CropCase {
    std::string id, yaml, input, mode;
    std::vector<std::int64_t> padding;
    double fill;
    std::int64_t h, w;
  };
  for (const auto& c : std::vector<CropCase>{
           {"crop_pad4", "{name: random_crop, size: 28, padding: 4}", "u1", "constant", {4}, 0, 28, 28},
           {"crop_fill", "{name: random_crop, size: [20, 24], padding: [3, 2], fill: 7}", "u3", "constant", {3, 2}, 7, 20, 24},
           {"crop_reflect", "{name: random_crop, size: 15, padding: [1, 2, 3, 4], padding_mode: reflect}", "f3",
            "reflect", {1, 2, 3, 4}, 0, 15, 15},
           {"crop_edge", "{name: random_crop, size: 30, padding: 5, padding_mode: edge}", "u1", "edge", {5}, 0, 30, 30},
           {"crop_symmetric", "{name: random_crop, size: 20, padding: 3, padding_mode: symmetric}", "u1", "symmetric",
            {3}, 0, 20, 20},
           {"crop_plain", "{name: random_crop, size: 11}", "u3", "constant", {}, 0, 11, 11},
           // pad_if_needed pads 1 more on each side: 2 in all
           {"crop_if_needed", "{name: random_crop, size: [20, 26], padding: 1, pad_if_needed: true, fill: 3}", "u3",
            "constant", {2}, 3, 20, 26},
           {"crop_float", "{name: random_crop, size: 19, padding: 2, fill: 0.5}", "f3", "constant", {2}, 0.5, 19, 19},
       }) {
    const auto& x = inputs[c.input];
    std::vector<std::int64_t> p = c.padding;
    if (p.size() == 1) p = {p[0], p[0], p[0], p[0]};
    if (p.size() == 2) p = {p[0], p[1], p[0], p[1]};
    if (p.empty()) p = {0, 0, 0, 0};
    for (std::uint64_t seed : {1, 2, 3}) {
      graft::Rng rng(seed);
      const auto top = rng.integer(0, x.size(1) + p[1] + p[3] - c.h);
      const auto left = rng.integer(0, x.size(2) + p[0] + p[2] - c.w);
      cases.push_back({c.id + "_" + std::to_string(seed), c.yaml, c.input,
                       {{"op", "pad_crop"},
                        {"args",
                         {{"padding", c.padding}, {"fill", c.fill}, {"padding_mode", c.mode}, {"top", top},
                          {"left", left}, {"height", c.h}, {"width", c.w}}}},
                       seed});
    }
  }
  // Flips: one bernoulli(p) draw.
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    graft::Rng rng(seed);
    const bool flip = rng.bernoulli(0.5);
    cases.push_back({"hflip_" + std::to_string(seed), "random_horizontal_flip", "u3",
                     flip ? json{{"op", "hflip"}} : json{{"op", "pad_crop"}, {"args", {{"padding", json::array()}, {"fill", 0}, {"padding_mode", "constant"}, {"top", 0}, {"left", 0}, {"height", 17}, {"width", 23}}}},
                     seed});
  }
  cases.push_back({"vflip", "{name: random_vertical_flip, p: 1}", "f3", {{"op", "vflip"}}});
  // Rotation: one uniform(lo, hi) draw for the angle.
  struct RotCase {
    std::string id, yaml, input, interp;
    double lo, hi, fill, tol;
  };
  for (const auto& c : std::vector<RotCase>{
           {"rot_nearest", "{name: random_rotation, degrees: 30}", "u3", "nearest", -30, 30, 0, 0},
           {"rot_bilinear", "{name: random_rotation, degrees: [10, 80], interpolation: bilinear, fill: 9}", "u1",
            "bilinear", 10, 80, 9, 0},
           {"rot_float", "{name: random_rotation, degrees: 180, interpolation: bilinear, fill: 0.5}", "f3", "bilinear",
            -180, 180, 0.5, 1e-6},
       }) {
    for (std::uint64_t seed : {4, 5}) {
      graft::Rng rng(seed);
      const double angle = rng.uniform(c.lo, c.hi);
      cases.push_back({c.id + "_" + std::to_string(seed), c.yaml, c.input,
                       {{"op", "rotate"}, {"args", {{"angle", angle}, {"interpolation", c.interp}, {"fill", c.fill}}}},
                       seed, c.tol});
    }
  }
  // RandomResizedCrop: torchvision's get_params, replayed with graft's draws.
  for (std::uint64_t seed : {1, 2, 3, 4}) {
    const auto& x = inputs["u3"];
    graft::Rng rng(seed);
    const auto [top, left, h, w] = graft::test::resized_crop_box(x.size(1), x.size(2), rng);
    BOOST_REQUIRE(top >= 0);
    cases.push_back({"rrc_" + std::to_string(seed), "{name: random_resized_crop, size: [12, 10]}", "u3",
                     {{"op", "resized_crop"},
                      {"args", {{"top", top}, {"left", left}, {"height", h}, {"width", w}, {"size", {12, 10}},
                                {"interpolation", "bilinear"}}}},
                     seed});
    // antialiased: graft's own resampler (PIL's filter, as torchvision's), rounding apart
    cases.push_back({"rrc_aa_" + std::to_string(seed), "{name: random_resized_crop, size: [12, 10], antialias: true}", "u3",
                     {{"op", "resized_crop"},
                      {"args", {{"top", top}, {"left", left}, {"height", h}, {"width", w}, {"size", {12, 10}},
                                {"interpolation", "bilinear"}, {"antialias", true}}}},
                     seed, 1});
  }

  json list = json::array();
  for (auto& c : cases) {
    c.oracle["id"] = c.id;
    c.oracle["input"] = c.input;
    list.push_back(c.oracle);
  }
  std::ofstream(dir / "cases.json") << list.dump();
  graft::save_state_dict(inputs, (dir / "in.pth").string());
  python("transforms " + (dir / "in.pth").string() + " " + (dir / "cases.json").string() + " " + (dir / "out.pth").string());
  auto want = load((dir / "out.pth").string());

  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.id << ": " << c.yaml) {
      auto t = transform(c.yaml);
      const auto& x = inputs[c.input];
      graft::Rng rng(c.seed);
      const auto y = t->apply(x, rng);
      const auto& w = want.at(c.id);
      BOOST_TEST(y.sizes() == w.sizes());
      BOOST_TEST(y.dtype() == w.dtype());
      BOOST_TEST(t->output_shape(x.sizes().vec()) == y.sizes().vec());
      if (y.sizes() == w.sizes()) {
        const double diff = (y.to(torch::kDouble) - w.to(torch::kDouble)).abs().max().item<double>();
        BOOST_TEST(diff <= c.tol);
      }
      BOOST_TEST(torch::equal(x, inputs[c.input]));  // the input is left alone
    }
  }
  fs::remove_all(dir);
}

// The transforms that copy pixels one by one (crop, flip, to_tensor, normalize) read any
// strides: a view (a crop, a transposed image, an HWC buffer seen as CHW) gives what its
// contiguous copy gives.
BOOST_AUTO_TEST_CASE(views_give_what_their_contiguous_copies_give) {
  torch::manual_seed(3);
  const auto hwc = torch::randint(0, 256, {13, 17, 3}, torch::kUInt8);
  const auto views = {hwc.permute({2, 0, 1}), hwc.permute({2, 1, 0}).slice(2, 1, 12), hwc.permute({2, 0, 1}).flip({1})};
  for (const auto* yaml : {"{name: random_crop, size: 9, padding: 2, fill: 5}", "{name: random_crop, size: [15, 7], pad_if_needed: true}",
                           "{name: random_horizontal_flip, p: 1}", "to_tensor"}) {
    const auto t = transform(yaml);
    for (const auto& v : views)
      for (std::uint64_t seed : {1, 2}) {
        graft::Rng a(seed), b(seed);
        BOOST_TEST(torch::equal(t->apply(v, a), t->apply(v.contiguous(), b)), yaml << " on " << v.strides());
      }
  }
  const auto f = torch::rand({3, 6, 5}).permute({0, 2, 1});
  graft::Rng rng(1);
  const auto n = transform("{name: normalize, mean: [0.1, 0.2, 0.3], std: [0.5, 0.6, 0.7]}");
  BOOST_TEST(torch::equal(n->apply(f, rng), n->apply(f.contiguous(), rng)));
}

BOOST_AUTO_TEST_CASE(transform_flags_shapes_and_errors) {
  graft::Rng rng(0);
  BOOST_TEST(transform("{name: random_crop, size: 3}")->random());
  BOOST_TEST(transform("random_horizontal_flip")->random());
  BOOST_TEST(transform("{name: random_rotation, degrees: 5}")->random());
  BOOST_TEST(transform("{name: random_resized_crop, size: 5}")->random());
  BOOST_TEST(!transform("to_tensor")->random());
  BOOST_TEST(!transform("{name: resize, size: 5}")->random());
  BOOST_TEST(!transform("{name: center_crop, size: 5}")->random());

  const auto g = transform("grayscale_to_rgb");
  const auto one = torch::randint(0, 256, {1, 4, 5}, torch::kUInt8);
  BOOST_TEST(torch::equal(g->apply(one, rng), one.repeat({3, 1, 1})));
  const auto three = torch::rand({3, 4, 5});
  BOOST_TEST(torch::equal(g->apply(three, rng), three));
  BOOST_TEST(g->output_shape({1, 4, 5}) == (std::vector<std::int64_t>{3, 4, 5}));
  BOOST_TEST(transform("{name: resize, size: 14}")->output_shape({3, 100, 50}) == (std::vector<std::int64_t>{3, 28, 14}));

  auto e = one_line_error_of([&] { transform("{name: normalize, mean: [0.5], std: [0.2]}")->apply(one, rng); });
  BOOST_TEST(contains(e.what(), "normalize: needs a float image, got uint8 (put to_tensor before it)"), e.what());
  e = one_line_error_of([&] { transform("{name: normalize, mean: [0.5, 0.5], std: [0.2, 0.2]}")->apply(three, rng); });
  BOOST_TEST(contains(e.what(), "normalize: 2 mean/std values for an image with 3 channels"), e.what());
  e = one_line_error_of([&] { transform("{name: normalize, mean: [0.5, 0.5], std: [0.2]}"); });
  BOOST_TEST(contains(e.what(), "test.yaml:1:"), e.what());
  BOOST_TEST(contains(e.what(), "std: has 1 values, mean has 2"), e.what());
  e = one_line_error_of([&] { transform("{name: random_crop, size: 10}")->apply(one, rng); });
  BOOST_TEST(contains(e.what(), "random_crop: a 10x10 crop of a 4x5 image"), e.what());
  const auto padded = transform("{name: random_crop, size: 10, pad_if_needed: true}")->apply(one, rng);
  BOOST_TEST(padded.sizes() == torch::IntArrayRef({1, 10, 10}));
  e = one_line_error_of([&] { transform("{name: random_crop, size: 4, padding: 9, padding_mode: reflect}")->apply(one, rng); });
  BOOST_TEST(contains(e.what(), "too large"), e.what());
  e = one_line_error_of([&] { transform("{name: resize, size: [1, 2, 3]}"); });
  BOOST_TEST(contains(e.what(), "size: must be a positive int"), e.what());
  e = one_line_error_of([&] { transform("{name: random_horizontal_flip, p: 2}"); });
  BOOST_TEST(contains(e.what(), "p: must be in [0, 1], got 2"), e.what());
}
