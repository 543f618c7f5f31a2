// The cifar10 dataset plugin (binary batches, batches.meta.txt) on arbitrary files. Input:
// one byte, the length of batches.meta.txt (0: no such file), that file, then test_batch.bin.
#include <filesystem>

#include "dataset_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t meta_size = std::min<std::size_t>(data[0], size - 1);
  static const std::string root = [] {
    const auto r = graft::fuzz::scratch_dir() + "/cifar";
    std::filesystem::create_directories(r);
    return r;
  }();
  std::filesystem::remove(root + "/batches.meta.txt");
  if (meta_size > 0) graft::fuzz::write_file("cifar/batches.meta.txt", data + 1, meta_size);
  graft::fuzz::write_file("cifar/test_batch.bin", data + 1 + meta_size, size - 1 - meta_size);
  graft::fuzz::expect_clean([&] {
    const auto split = graft::fuzz::make_dataset("cifar10", root)->open("test");
    if (split->size() * 3073 != static_cast<std::int64_t>(size - 1 - meta_size))
      graft::fuzz::broken("fuzz_cifar", "the dataset does not match the batch file");
    graft::fuzz::read_samples("fuzz_cifar", *split, {3, 32, 32}, 10);
  });
  return 0;
}
