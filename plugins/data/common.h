// What the dataset plugins share: reading whole files (gzipped or not), the errors that
// name a file, and an in-memory split whose samples are fixed-size records of one buffer.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <graft/data.h>
#include <graft/error.h>

namespace graft::data {

/// A usage error about a data file: "PATH: message".
[[noreturn]] inline void bad_file(const std::string& path, const std::string& message) {
  throw Error::usage(path + ": " + message);
}

/// The whole file. Names ending in .gz are inflated with zlib (a truncated or corrupt
/// stream is an error naming the file).
std::vector<std::uint8_t> read_file(const std::string& path);

bool is_file(const std::string& path);
bool is_dir(const std::string& path);

/// A split held in memory: sample i is `shape` bytes at offset + i * stride of `bytes`.
/// get() copies one sample (one small tensor); everything else is read-only.
class RecordDataset : public Dataset {
 public:
  RecordDataset(std::shared_ptr<const std::vector<std::uint8_t>> bytes, std::int64_t offset,
                std::int64_t stride, std::vector<std::int64_t> shape, std::vector<std::int64_t> targets,
                std::vector<std::string> classes)
      : bytes_(std::move(bytes)), offset_(offset), stride_(stride), shape_(std::move(shape)),
        targets_(std::move(targets)), classes_(std::move(classes)) {}

  std::int64_t size() const override { return static_cast<std::int64_t>(targets_.size()); }
  Sample get(std::int64_t index) const override {
    if (index < 0 || index >= size())
      throw Error::runtime("sample index " + std::to_string(index) + " out of range [0, " +
                           std::to_string(size()) + ")");
    auto* p = const_cast<std::uint8_t*>(bytes_->data()) + offset_ + index * stride_;
    return {torch::from_blob(p, shape_, torch::kUInt8).clone(), targets_[static_cast<std::size_t>(index)]};
  }
  std::vector<std::int64_t> targets() const override { return targets_; }
  std::vector<std::string> classes() const override { return classes_; }

 private:
  std::shared_ptr<const std::vector<std::uint8_t>> bytes_;
  std::int64_t offset_, stride_;
  std::vector<std::int64_t> shape_;
  std::vector<std::int64_t> targets_;
  std::vector<std::string> classes_;
};

/// "a, b, c"
inline std::string join(const std::vector<std::string>& items, const std::string& sep = ", ") {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : sep) + i;
  return s;
}

/// The usage error for a split a source does not have.
[[noreturn]] inline void unknown_split(const std::string& dataset, const std::string& split,
                                       const std::vector<std::string>& available) {
  throw Error::usage(dataset + " has no split '" + split + "' (available: " + join(available) + ")");
}

}  // namespace graft::data
