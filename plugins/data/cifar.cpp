// CIFAR-10's binary version: data_batch_1..5.bin (train) and test_batch.bin (test), each a
// run of 3073-byte records (1 label byte, then 3x32x32 bytes, channel-major), and
// batches.meta.txt with one class name per line.
#include <fstream>

#include "common.h"

namespace {

using graft::Config;
using graft::DataSource;
using graft::Dataset;
using namespace graft::data;

constexpr std::int64_t kImage = 3 * 32 * 32, kRecord = kImage + 1;

class Cifar10 : public DataSource {
 public:
  explicit Cifar10(const Config& c) : root_(c.get<std::string>("root")) {
    // The archive unpacks into cifar-10-batches-bin/; accept its parent too.
    if (!is_file(root_ + "/test_batch.bin") && is_dir(root_ + "/cifar-10-batches-bin")) root_ += "/cifar-10-batches-bin";
    if (!is_dir(root_)) c["root"].fail("'" + root_ + "' is not a directory");
    classes_ = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
    std::ifstream meta(root_ + "/batches.meta.txt");
    std::vector<std::string> names;
    for (std::string line; std::getline(meta, line);) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (!line.empty()) names.push_back(line);
    }
    if (!names.empty()) {
      if (names.size() != 10)
        bad_file(root_ + "/batches.meta.txt", std::to_string(names.size()) + " class names, expected 10");
      classes_ = names;
    }
  }

  std::vector<std::string> splits() const override { return {"train", "test"}; }

  std::shared_ptr<Dataset> open(const std::string& split) const override {
    std::vector<std::string> files;
    if (split == "train") {
      for (int i = 1; i <= 5; ++i) files.push_back(root_ + "/data_batch_" + std::to_string(i) + ".bin");
    } else if (split == "test") {
      files.push_back(root_ + "/test_batch.bin");
    } else {
      unknown_split("cifar10", split, splits());
    }
    auto bytes = std::make_shared<std::vector<std::uint8_t>>();
    std::vector<std::int64_t> targets;
    for (const auto& f : files) {
      if (!is_file(f)) bad_file(f, "no such file (cifar10 " + split + " split)");
      auto b = read_file(f);
      if (b.empty() || b.size() % kRecord != 0)
        bad_file(f, std::to_string(b.size()) + " bytes, not a whole number of 3073-byte CIFAR-10 records");
      for (std::size_t at = 0; at < b.size(); at += kRecord) {
        if (b[at] >= 10)
          bad_file(f, "label " + std::to_string(b[at]) + " of record " + std::to_string(at / kRecord) +
                          " is not a class (0..9)");
        targets.push_back(b[at]);
      }
      bytes->insert(bytes->end(), b.begin(), b.end());
    }
    return std::make_shared<RecordDataset>(std::move(bytes), 1, kRecord, std::vector<std::int64_t>{3, 32, 32},
                                           std::move(targets), classes_);
  }

 private:
  std::string root_;
  std::vector<std::string> classes_;
};

std::shared_ptr<DataSource> make_cifar10(const Config& c) { return std::make_shared<Cifar10>(c); }

}  // namespace

GRAFT_PLUGIN(dataset, "cifar10", make_cifar10,
             "CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin), splits train/test, uint8 [3, 32, 32]",
             graft::KeySpec::required_key("root", graft::ValueType::string,
                                          "directory of the .bin files (or its parent holding cifar-10-batches-bin/)"));
