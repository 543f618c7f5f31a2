// MNIST-style IDX files (MNIST, Fashion-MNIST): one images file (magic 0x00000803,
// n x rows x cols bytes) and one labels file (magic 0x00000801, n bytes) per split, each
// either plain or gzipped. Both are read whole at open(); a sample is a [1, rows, cols]
// uint8 tensor copied out of that buffer.
#include "common.h"

namespace {

using graft::Config;
using graft::DataSource;
using graft::Dataset;
using namespace graft::data;

std::uint32_t be32(const std::vector<std::uint8_t>& b, std::size_t at) {
  return (std::uint32_t(b[at]) << 24) | (std::uint32_t(b[at + 1]) << 16) | (std::uint32_t(b[at + 2]) << 8) | b[at + 3];
}

/// Checks an IDX header (magic, then `dims` big-endian sizes) and the file's length.
std::vector<std::int64_t> idx_dims(const std::vector<std::uint8_t>& b, const std::string& path, int dims) {
  const std::uint32_t magic = 0x0800u + static_cast<std::uint32_t>(dims);
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(dims);
  if (b.size() < header) bad_file(path, "truncated: " + std::to_string(b.size()) + " bytes, shorter than the IDX header");
  if (be32(b, 0) != magic) {
    char have[16], want[16];
    std::snprintf(have, sizeof have, "0x%08x", be32(b, 0));
    std::snprintf(want, sizeof want, "0x%08x", magic);
    bad_file(path, std::string("not an IDX ") + (dims == 1 ? "labels" : "images") + " file (magic " + have +
                       ", expected " + want + ")");
  }
  std::vector<std::int64_t> shape;
  std::uint64_t payload = 1;
  bool overflow = false;  // three 32-bit sizes can multiply past 2^64 (and wrap to the file's size)
  for (int d = 0; d < dims; ++d) {
    shape.push_back(be32(b, 4 + 4 * static_cast<std::size_t>(d)));
    overflow = __builtin_mul_overflow(payload, static_cast<std::uint64_t>(shape.back()), &payload) || overflow;
  }
  if (overflow || payload > b.size() - header)
    bad_file(path, "truncated: " + std::to_string(b.size()) + " bytes, the header promises " +
                       (overflow ? std::string("more than 2^64") : std::to_string(header + payload)));
  const std::uint64_t want = header + payload;
  if (b.size() > want)
    bad_file(path, std::to_string(b.size() - want) + " bytes after the data the header describes");
  return shape;
}

class IdxSource : public DataSource {
 public:
  IdxSource(std::string what, const Config& c, std::vector<std::string> classes)
      : what_(std::move(what)), root_(c.get<std::string>("root")), classes_(std::move(classes)) {
    if (!is_dir(root_)) c["root"].fail("'" + root_ + "' is not a directory");
  }

  std::vector<std::string> splits() const override { return {"train", "test"}; }

  std::shared_ptr<Dataset> open(const std::string& split) const override {
    std::string prefix;
    if (split == "train") prefix = "train";
    else if (split == "test") prefix = "t10k";
    else unknown_split(what_, split, splits());
    const auto images_path = find(prefix + "-images-idx3-ubyte");
    const auto labels_path = find(prefix + "-labels-idx1-ubyte");
    auto images = std::make_shared<const std::vector<std::uint8_t>>(read_file(images_path));
    const auto labels = read_file(labels_path);
    const auto ishape = idx_dims(*images, images_path, 3);
    const auto lshape = idx_dims(labels, labels_path, 1);
    if (ishape[0] != lshape[0])
      bad_file(labels_path, std::to_string(lshape[0]) + " labels for " + std::to_string(ishape[0]) + " images in " +
                                images_path);
    std::vector<std::int64_t> targets(labels.begin() + 8, labels.end());
    const auto num_classes = static_cast<std::int64_t>(classes_.size());
    for (std::size_t i = 0; i < targets.size(); ++i)
      if (targets[i] >= num_classes)
        bad_file(labels_path, "label " + std::to_string(targets[i]) + " of sample " + std::to_string(i) +
                                  " is not a class (0.." + std::to_string(num_classes - 1) + ")");
    return std::make_shared<RecordDataset>(std::move(images), 16, ishape[1] * ishape[2],
                                           std::vector<std::int64_t>{1, ishape[1], ishape[2]}, std::move(targets),
                                           classes_);
  }

 private:
  std::string find(const std::string& base) const {
    const auto plain = root_ + "/" + base;
    if (is_file(plain)) return plain;
    if (is_file(plain + ".gz")) return plain + ".gz";
    throw graft::Error::usage(what_ + ": neither " + plain + " nor " + plain + ".gz exists");
  }

  std::string what_, root_;
  std::vector<std::string> classes_;
};

std::shared_ptr<DataSource> make_fashion_mnist(const Config& c) {
  return std::make_shared<IdxSource>(
      "fashion_mnist", c,
      std::vector<std::string>{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                               "Bag", "Ankle boot"});
}

std::shared_ptr<DataSource> make_mnist(const Config& c) {
  return std::make_shared<IdxSource>("mnist", c,
                                     std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"});
}

}  // namespace

GRAFT_PLUGIN(dataset, "fashion_mnist", make_fashion_mnist,
             "Fashion-MNIST IDX files (plain or .gz), splits train/test, uint8 [1, 28, 28], 10 classes",
             graft::KeySpec("root", "/usr/share/datasets/fashion-mnist",
                            "directory of train-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz], ..."));
GRAFT_PLUGIN(dataset, "mnist", make_mnist,
             "MNIST IDX files (plain or .gz), splits train/test, uint8 [1, 28, 28], 10 classes",
             graft::KeySpec::required_key("root", graft::ValueType::string,
                                          "directory of train-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz], ..."));
