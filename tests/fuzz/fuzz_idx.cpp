// The mnist / fashion_mnist dataset plugin (IDX files, plain or gzipped) on arbitrary
// files. Input: one flag byte (bit 0: the images file is named .gz, bit 1: the labels file,
// bit 2: the test split), the images file's length (2 bytes, little-endian), the images
// file, then the labels file.
#include <filesystem>

#include "dataset_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const unsigned flags = data[0];
  const std::size_t images_size = std::min<std::size_t>(data[1] | (std::size_t(data[2]) << 8), size - 3);
  const std::uint8_t* images = data + 3;
  const std::uint8_t* labels = images + images_size;
  const std::size_t labels_size = size - 3 - images_size;
  const bool test = flags & 4;
  const std::string prefix = test ? "t10k" : "train";
  static const std::string root = [] {
    const auto r = graft::fuzz::scratch_dir() + "/idx";
    std::filesystem::create_directories(r);
    return r;
  }();
  for (const char* f : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                        "t10k-labels-idx1-ubyte"}) {
    std::filesystem::remove(root + "/" + f);
    std::filesystem::remove(root + "/" + f + ".gz");
  }
  graft::fuzz::write_file("idx/" + prefix + "-images-idx3-ubyte" + (flags & 1 ? ".gz" : ""), images, images_size);
  graft::fuzz::write_file("idx/" + prefix + "-labels-idx1-ubyte" + (flags & 2 ? ".gz" : ""), labels, labels_size);
  graft::fuzz::expect_clean([&] {
    const auto source = graft::fuzz::make_dataset(flags & 8 ? "fashion_mnist" : "mnist", root);
    const auto split = source->open(test ? "test" : "train");
    // the IDX header (big-endian n, rows, cols) of a plain file says what the dataset must be
    std::vector<std::int64_t> shape{1, 0, 0};
    if (!(flags & 1)) {
      auto be32 = [&](std::size_t at) -> std::uint64_t {
        return (std::uint64_t(images[at]) << 24) | (images[at + 1] << 16) | (images[at + 2] << 8) | images[at + 3];
      };
      const unsigned __int128 n = be32(4), rows = be32(8), cols = be32(12);
      if (n != static_cast<unsigned __int128>(split->size()) || 16 + n * rows * cols != images_size)
        graft::fuzz::broken("fuzz_idx", "the dataset does not match the images file's header");
      shape = {1, static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols)};
    } else if (split->size() > 0) {
      shape = split->get(0).input.sizes().vec();
      if (shape.size() != 3 || shape[0] != 1) graft::fuzz::broken("fuzz_idx", "a sample is not [1, H, W]");
    }
    graft::fuzz::read_samples("fuzz_idx", *split, shape, 10);
  });
  return 0;
}
