// Data plugins: datasets (a source of splits of labelled images) and transforms (one
// sample's image in, image out). The loader (host side, graft/loader.h) batches them.
//
//   class Idx : public graft::DataSource { ... open("train") ... };
//   GRAFT_PLUGIN(dataset, "fashion_mnist", make_fashion_mnist, "Fashion-MNIST IDX files",
//                graft::KeySpec("root", "/usr/share/datasets/fashion-mnist", "directory of the IDX files"));
//
// A dataset of image files also offers get_lazy(): the image still encoded, which a crop
// as the first transform decodes only in part (LazyImage, Transform::apply_lazy).
//
//   class HFlip : public graft::Transform {
//     torch::Tensor apply(const torch::Tensor& x, graft::Rng& rng) const override {
//       return rng.bernoulli(p_) ? x.flip({-1}) : x;
//     }
//     bool random() const override { return true; }
//   };
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "graft/plugin.h"

namespace graft {

/// One labelled sample. `input` is an image tensor (C, H, W): uint8 in 0..255 as decoded,
/// or float after `to_tensor`; `target` is its class index.
struct Sample {
  torch::Tensor input;
  std::int64_t target = 0;
};

/// A rectangle of an image, in its pixels: fractional where a decoder scaled the image.
struct Box {
  double top = 0, left = 0, height = 0, width = 0;
};

/// An image file not decoded yet. The loader hands it to the first transform
/// (Transform::apply_lazy), which decodes only what it keeps: a region, and at a reduced
/// scale when it downscales anyway (JPEG's DCT scaling). Called from one thread at a time.
class LazyImage {
 public:
  virtual ~LazyImage() = default;
  /// (C, H, W) of the whole decoded image, read from the file's header.
  virtual std::vector<std::int64_t> shape() const = 0;

  struct Region {
    torch::Tensor image;  ///< uint8 (C, H', W'), possibly a non-contiguous view
    Box box;              ///< where the requested box lies in `image`, in its pixels
  };
  /// `box` (inside the image) decoded at the smallest scale the format offers (JPEG: 1/8,
  /// 1/4, 1/2 or 1; other formats: 1) at which it still measures at least min_height x
  /// min_width pixels. At scale 1 with a box of whole pixels, `image` is exactly the box
  /// (as a crop of the whole decoded image, bit for bit) and `box` is all of it. A corrupt
  /// file is a usage error naming it.
  virtual Region decode(const Box& box, std::int64_t min_height, std::int64_t min_width) const = 0;

  /// The whole image at full size, contiguous: what Dataset::get gives.
  torch::Tensor decode_all() const;
};

/// Sample i with its image not decoded yet (image null: the dataset has no such form).
struct LazySample {
  std::shared_ptr<const LazyImage> image;
  std::int64_t target = 0;
};

/// One split of a dataset. get() is called from several loader threads at once: it must
/// be thread-safe (read-only after construction is the easy way).
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual std::int64_t size() const = 0;
  virtual Sample get(std::int64_t index) const = 0;
  /// Sample `index` with its image left encoded, for a first transform that decodes only
  /// part of it (Transform::apply_lazy). Datasets of image files override it; the default
  /// (image null) makes the loader call get().
  virtual LazySample get_lazy(std::int64_t /*index*/) const { return {}; }
  /// Every sample's class, in index order, without decoding images (class subsets,
  /// samples per class and stratified splits use it).
  virtual std::vector<std::int64_t> targets() const = 0;
  /// Class names, position = class index (empty: the indices are the names).
  virtual std::vector<std::string> classes() const { return {}; }
};

/// What a dataset plugin returns: its data, opened one split at a time.
class DataSource {
 public:
  virtual ~DataSource() = default;
  /// The splits it can open, e.g. {"train", "test"}.
  virtual std::vector<std::string> splits() const = 0;
  /// Opens a split. Missing or malformed files are a graft::Error::usage naming the file.
  virtual std::shared_ptr<Dataset> open(const std::string& split) const = 0;
};

template <> struct ProductOf<Kind::dataset> { using type = std::shared_ptr<DataSource>; };

/// The random source of one sample's transforms. The loader seeds it from (recipe seed,
/// epoch, sample index), so a sample is augmented the same way whatever the number of
/// worker threads, the batch it lands in, or where a run was resumed. Its draws are
/// defined here bit for bit (not by the standard library's distributions).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}

  /// The seed of sample `index` in `epoch` of a run seeded with `seed` (SplitMix64 mixing).
  static std::uint64_t seed_for(std::uint64_t seed, std::uint64_t epoch, std::uint64_t index) {
    std::uint64_t h = mix(seed ^ 0x6772616674ULL);  // "graft"
    h = mix(h ^ epoch);
    return mix(h ^ index);
  }

  std::uint64_t bits() { return engine_(); }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  /// Uniform in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Uniform integer in [lo, hi], both included (unbiased).
  std::int64_t integer(std::int64_t lo, std::int64_t hi) {
    const std::uint64_t span = static_cast<std::uint64_t>(hi - lo) + 1;
    if (span == 0) return static_cast<std::int64_t>(engine_());  // the whole 64-bit range
    const std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() -
                                std::numeric_limits<std::uint64_t>::max() % span;
    std::uint64_t x;
    do x = engine_(); while (x >= limit);
    return lo + static_cast<std::int64_t>(x % span);
  }
  /// True with probability p.
  bool bernoulli(double p) { return uniform() < p; }

 private:
  static std::uint64_t mix(std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::mt19937_64 engine_;
};

/// A transform of one sample's image (C, H, W). It must draw randomness only from `rng`
/// and be safe to call from several threads at once (const, no shared mutable state).
class Transform {
 public:
  virtual ~Transform() = default;
  virtual torch::Tensor apply(const torch::Tensor& image, Rng& rng) const = 0;
  /// True for augmentations (random crop, flip, ...): they are left out of the default
  /// evaluation transforms.
  virtual bool random() const { return false; }
  /// The output shape for an input shape (C, H, W), for `graft check` and dry runs.
  virtual std::vector<std::int64_t> output_shape(const std::vector<std::int64_t>& in) const { return in; }
  /// apply() on an image not decoded yet (the first transform of the loader, on a dataset
  /// of image files). A crop overrides it to decode only its region, with the same draws
  /// as apply() and its result (within the decoder's scaling where it downscales). The
  /// default decodes the whole image and calls apply().
  virtual torch::Tensor apply_lazy(const LazyImage& image, Rng& rng) const { return apply(image.decode_all(), rng); }
};

inline torch::Tensor LazyImage::decode_all() const {
  const auto s = shape();
  const Box all{0, 0, static_cast<double>(s[1]), static_cast<double>(s[2])};
  return decode(all, s[1], s[2]).image.contiguous();
}

template <> struct ProductOf<Kind::transform> { using type = std::shared_ptr<Transform>; };

}  // namespace graft
