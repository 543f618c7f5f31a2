// A crop decoded from a JPEG that is not decoded whole (graft::LazyImage, what the loader
// hands random_resized_crop through Transform::apply_lazy) against the whole image decoded
// and then cropped: bit for bit at full scale, for every JPEG layout and colour mode; close
// to torchvision's antialiased resize where libjpeg-turbo's DCT scaling decodes the crop at
// 1/2, 1/4 or 1/8 of its size; and the loader's batches, which take that path, still a
// function of (seed, epoch, sample index) only.
#define BOOST_TEST_MODULE jpeg_crop
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "graft/data.h"
#include "graft/host/loader.h"
#include "graft/host/serialize.h"
#include "support/draws.h"
#include "support/plugins.h"
#include "support/run.h"

namespace fs = std::filesystem;
using graft::Box;
using graft::test::contains;
using graft::test::registry;
using json = nlohmann::json;

namespace {

void python(const std::string& args) {
  const auto r = graft::test::run(std::string(GRAFT_PYTHON) + " " + GRAFT_SOURCE_DIR + "/tests/plugins/data_oracle.py " + args);
  BOOST_REQUIRE_MESSAGE(r.code == 0, "oracle failed: " + r.err);
}

// DIR/train/x/{a..e}.jpg (4:2:0, 4:4:4, 4:2:2, gray, progressive) and f.png, written once.
struct Files {
  fs::path dir = graft::test::temp_dir("jpeg-crop");
  Files() { python("jpeg_files " + dir.string()); }
  ~Files() { fs::remove_all(dir); }
};
const Files& files() {
  static Files f;
  return f;
}

std::shared_ptr<graft::Dataset> folder(const std::string& mode = "keep") {
  return registry()
      .create<graft::Kind::dataset>(graft::test::yaml("{name: image_folder, root: " + files().dir.string() + ", mode: " + mode + "}"))
      ->open("train");
}

std::shared_ptr<graft::Transform> transform(const std::string& yaml) {
  return registry().create<graft::Kind::transform>(graft::test::yaml(yaml));
}

// The same dataset without get_lazy(): the loader decodes every image whole.
struct Whole : graft::Dataset {
  std::shared_ptr<graft::Dataset> base;
  explicit Whole(std::shared_ptr<graft::Dataset> b) : base(std::move(b)) {}
  std::int64_t size() const override { return base->size(); }
  graft::Sample get(std::int64_t i) const override { return base->get(i); }
  std::vector<std::int64_t> targets() const override { return base->targets(); }
};

std::vector<graft::Batch> epoch(const std::shared_ptr<graft::Dataset>& data, const std::string& crop,
                                std::int64_t workers, std::int64_t e) {
  graft::LoaderOptions o;
  o.batch_size = 4;
  o.workers = workers;
  o.seed = 3;
  graft::Loader loader(data, {transform(crop), transform("random_horizontal_flip"), transform("to_tensor")}, o);
  loader.start(e);
  std::vector<graft::Batch> out;
  while (auto b = loader.next()) out.push_back(std::move(*b));
  return out;
}

bool same(const std::vector<graft::Batch>& a, const std::vector<graft::Batch>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t k = 0; k < a.size(); ++k)
    if (a[k].indices != b[k].indices || !torch::equal(a[k].inputs, b[k].inputs) || !torch::equal(a[k].targets, b[k].targets))
      return false;
  return true;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_box_decoded_at_full_scale_is_that_crop_of_the_whole_image) {
  for (const std::string mode : {"keep", "rgb", "gray"}) {
    const auto d = folder(mode);
    BOOST_REQUIRE(d->size() == 6);
    for (std::int64_t i = 0; i < d->size(); ++i) {
      const auto whole = d->get(i).input;
      const auto lazy = d->get_lazy(i);
      BOOST_REQUIRE(lazy.image);
      BOOST_TEST(lazy.target == d->get(i).target);
      BOOST_TEST(lazy.image->shape() == whole.sizes().vec());
      BOOST_TEST(torch::equal(lazy.image->decode_all(), whole));
      const auto H = whole.size(1), W = whole.size(2);
      graft::Rng rng(static_cast<std::uint64_t>(i));
      for (int k = 0; k < 25; ++k) {
        // any box, the image's edges included (a JPEG's cropped window is exact only away
        // from its own edges: the decoder widens it by a pixel)
        const auto top = k == 0 ? 0 : rng.integer(0, H - 1), left = k == 0 ? 0 : rng.integer(0, W - 1);
        const auto h = k == 1 ? H - top : rng.integer(1, H - top), w = k == 1 ? W - left : rng.integer(1, W - left);
        const Box box{static_cast<double>(top), static_cast<double>(left), static_cast<double>(h), static_cast<double>(w)};
        const auto r = lazy.image->decode(box, h, w);
        BOOST_TEST_CONTEXT(mode << " file " << i << " box " << top << "," << left << " " << h << "x" << w) {
          BOOST_TEST((r.box.top == 0 && r.box.left == 0 && r.box.height == h && r.box.width == w));
          BOOST_TEST(torch::equal(r.image, whole.slice(1, top, top + h).slice(2, left, left + w)));
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(random_resized_crop_of_an_undecoded_image_is_the_same_as_of_the_decoded_one) {
  // No output here is under half its crop: every crop is decoded at full scale.
  const auto d = folder("rgb");
  for (const std::string yaml : {"{name: random_resized_crop, size: 224}", "{name: random_resized_crop, size: 224, antialias: true}",
                                 "{name: random_resized_crop, size: [120, 90], interpolation: nearest, antialias: true}",
                                 "{name: random_resized_crop, size: 16, scale: [0.001, 0.002]}"}) {
    const auto t = transform(yaml);
    for (std::int64_t i = 0; i < d->size(); ++i) {
      const auto whole = d->get(i).input;
      const auto lazy = d->get_lazy(i).image;
      for (std::uint64_t seed = 1; seed <= 12; ++seed) {
        graft::Rng a(seed), b(seed);
        const auto y = t->apply_lazy(*lazy, a);
        const auto z = t->apply(whole, b);
        BOOST_TEST_CONTEXT(yaml << " file " << i << " seed " << seed) {
          BOOST_TEST(y.sizes() == z.sizes());
          BOOST_TEST(torch::equal(y, z));
          BOOST_TEST(a.bits() == b.bits());  // the same draws
        }
      }
    }
  }
  // transforms without apply_lazy of their own decode the whole image
  graft::Rng a(1), b(1);
  BOOST_TEST(torch::equal(transform("{name: center_crop, size: 50}")->apply_lazy(*d->get_lazy(0).image, a),
                          transform("{name: center_crop, size: 50}")->apply(d->get(0).input, b)));
}

// libjpeg-turbo's DCT scaling keeps the low frequencies of each 8x8 block and drops the rest:
// itself a smoothing downscale, not the same numbers as a triangle filter. The reference is
// torchvision's RandomResizedCrop as ImageFolder runs it (PIL decodes the whole image and
// resizes with its antialiasing filter). The tolerance: the DCT-scaled result must be much
// closer to that reference than torchvision 0.14's own tensor path (antialias=False, its
// default for tensors) is, which torchvision ships as the same transform; and within a
// few grey levels on average.
BOOST_AUTO_TEST_CASE(dct_scaled_crops_stay_close_to_torchvisions_antialiased_resize) {
  const auto d = folder("keep");
  const std::int64_t size = 48;
  const auto t = transform("{name: random_resized_crop, size: 48, antialias: true}");
  json cases = json::array();
  struct Mine {
    std::string id;
    torch::Tensor lazy, whole;
    int scale;
  };
  std::vector<Mine> mine;
  std::map<int, int> scales;
  const std::vector<std::string> names = {"a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.png"};  // image_folder's order
  for (std::int64_t i = 0; i < d->size(); ++i) {
    const auto whole = d->get(i).input;
    const auto lazy = d->get_lazy(i).image;
    for (std::uint64_t seed = 1; seed <= 10; ++seed) {
      graft::Rng rng(seed);
      const auto [top, left, h, w] = graft::test::resized_crop_box(whole.size(1), whole.size(2), rng);
      BOOST_REQUIRE(top >= 0);
      const Box box{static_cast<double>(top), static_cast<double>(left), static_cast<double>(h), static_cast<double>(w)};
      const auto region = lazy->decode(box, size, size);
      // the smallest of 1/8, 1/4, 1/2, 1 at which the crop still covers the output
      const int scale = static_cast<int>(std::lround(static_cast<double>(h) / region.box.height));
      BOOST_TEST((region.box.height >= size && region.box.width >= size));
      const bool jpeg = names[static_cast<std::size_t>(i)].find(".jpg") != std::string::npos;
      BOOST_TEST((!jpeg || scale == 8 || region.box.height < 2 * size || region.box.width < 2 * size));  // PNG: 1
      scales[scale]++;
      graft::Rng a(seed), b(seed);
      const std::string id = std::to_string(i) + "_" + std::to_string(seed);
      mine.push_back({id, t->apply_lazy(*lazy, a), t->apply(whole, b), scale});
      cases.push_back({{"id", id}, {"file", (files().dir / "train" / "x" / names[static_cast<std::size_t>(i)]).string()},
                       {"top", top}, {"left", left}, {"height", h}, {"width", w}, {"size", {size, size}}});
    }
  }
  BOOST_TEST(scales[2] > 0);
  BOOST_TEST(scales[4] > 0);
  const auto work = graft::test::temp_dir("jpeg-crop-cases");
  std::ofstream(work / "cases.json") << cases.dump();
  python("jpeg_crops " + (work / "cases.json").string() + " " + (work / "want.pth").string());
  std::map<std::string, torch::Tensor> want;
  for (const auto& item : graft::load_state_dict((work / "want.pth").string())) want[item.key()] = item.value();
  fs::remove_all(work);

  auto mean_abs = [](const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().mean().item<double>();
  };
  double sum_lazy = 0, sum_plain = 0;
  int scaled = 0;
  for (const auto& m : mine) {
    const auto& pil = want.at(m.id + "_pil");
    BOOST_TEST_CONTEXT("case " << m.id << " at 1/" << m.scale) {
      BOOST_REQUIRE(m.lazy.sizes() == pil.sizes());
      // decoded whole, graft's antialiasing is torchvision's (tensor) and PIL's up to rounding
      BOOST_TEST((m.whole.to(torch::kInt) - want.at(m.id + "_aa").to(torch::kInt)).abs().max().item<int>() <= 1);
      BOOST_TEST((m.whole.to(torch::kInt) - pil.to(torch::kInt)).abs().max().item<int>() <= 2);
      if (m.scale == 1) {
        BOOST_TEST(torch::equal(m.lazy, m.whole));
        continue;
      }
      ++scaled;
      const double lazy = mean_abs(m.lazy, pil), plain = mean_abs(want.at(m.id + "_plain"), pil);
      sum_lazy += lazy;
      sum_plain += plain;
      BOOST_TEST(lazy <= 3.0);
      BOOST_TEST(lazy <= 0.75 * plain, "DCT-scaled " << lazy << " vs torchvision without antialias " << plain);
    }
  }
  BOOST_TEST_MESSAGE("mean |difference| from PIL over " << scaled << " DCT-scaled crops: " << sum_lazy / scaled
                                                        << " (torchvision, tensors, antialias off: " << sum_plain / scaled << ")");
  BOOST_TEST(sum_lazy <= 0.5 * sum_plain);
}

BOOST_AUTO_TEST_CASE(the_loaders_batches_depend_on_seed_epoch_and_index_only) {
  const auto lazy = folder("rgb");
  const auto whole = std::make_shared<Whole>(folder("rgb"));
  for (const std::string crop : {"{name: random_resized_crop, size: 64, antialias: true}",   // DCT-scaled
                                 "{name: random_resized_crop, size: 200, antialias: true}"}) {  // full scale
    const auto base = epoch(lazy, crop, 0, 1);
    BOOST_TEST_CONTEXT(crop) {
      BOOST_TEST(same(base, epoch(lazy, crop, 1, 1)));
      BOOST_TEST(same(base, epoch(lazy, crop, 2, 1)));
      BOOST_TEST(!same(base, epoch(lazy, crop, 2, 2)));
      // decoding whole gives the same bits where nothing is scaled
      BOOST_TEST(same(base, epoch(whole, crop, 2, 1)) == (crop.find("200") != std::string::npos));
    }
  }
}

BOOST_AUTO_TEST_CASE(a_broken_jpeg_is_named_when_opened) {
  const auto dir = graft::test::temp_dir("jpeg-broken");
  fs::create_directories(dir / "c");
  const auto bytes = graft::test::slurp(files().dir / "train" / "x" / "a.jpg");
  std::ofstream(dir / "c" / "cut.jpg", std::ios::binary) << bytes.substr(0, 40);
  const auto d = registry().create<graft::Kind::dataset>(graft::test::yaml("{name: image_folder, root: " + dir.string() + "}"))->open("train");
  const auto e = graft::test::one_line_error_of([&] { d->get_lazy(0); });
  BOOST_TEST(contains(e.what(), (dir / "c" / "cut.jpg").string() + ": bad JPEG"), e.what());
  BOOST_TEST(e.exit_code() == 2);
  fs::remove_all(dir);
}
