// Image files named one by one (PNG or JPEG), as one split "images" in the order given:
// what `graft features` and `graft predict` read a user's pictures through, so the host
// needs no image decoder of its own. Every target is 0; the classes are the file names.
#include <filesystem>

#include "decode.h"

namespace {

using graft::Config;
using graft::DataSource;
using graft::Dataset;
using graft::Sample;
using namespace graft::data;

class Files : public Dataset {
 public:
  Files(std::vector<std::string> files, ColorMode mode) : files_(std::move(files)), mode_(mode) {}
  std::int64_t size() const override { return static_cast<std::int64_t>(files_.size()); }
  Sample get(std::int64_t index) const override {
    if (index < 0 || index >= size()) throw graft::Error::runtime("image_files: sample index out of range");
    return {decode_image(files_[static_cast<std::size_t>(index)], mode_), 0};
  }
  graft::LazySample get_lazy(std::int64_t index) const override {
    if (index < 0 || index >= size()) throw graft::Error::runtime("image_files: sample index out of range");
    return {open_image(files_[static_cast<std::size_t>(index)], mode_), 0};
  }
  std::vector<std::int64_t> targets() const override { return std::vector<std::int64_t>(files_.size(), 0); }
  std::vector<std::string> classes() const override { return files_; }

 private:
  std::vector<std::string> files_;
  ColorMode mode_;
};

class ImageFiles : public DataSource {
 public:
  explicit ImageFiles(const Config& c) : files_(c.get<std::vector<std::string>>("files")) {
    const auto mode = c.get<std::string>("mode");
    mode_ = mode == "rgb" ? ColorMode::rgb : mode == "gray" ? ColorMode::gray : ColorMode::keep;
    for (const auto& f : files_)
      if (!is_file(f)) bad_file(f, "no such image file");
  }
  std::vector<std::string> splits() const override { return {"images"}; }
  std::shared_ptr<Dataset> open(const std::string& split) const override {
    if (split != "images") unknown_split("image_files", split, splits());
    return std::make_shared<Files>(files_, mode_);
  }

 private:
  std::vector<std::string> files_;
  ColorMode mode_ = ColorMode::keep;
};

std::shared_ptr<DataSource> make_image_files(const Config& c) { return std::make_shared<ImageFiles>(c); }

}  // namespace

GRAFT_PLUGIN(dataset, "image_files", make_image_files,
             "Image files (PNG, JPEG) listed one by one, as the split 'images' in the order given (targets 0). "
             "Decoded lazily.",
             graft::KeySpec::required_key("files", graft::ValueType::string_list, "the image files").non_empty(),
             graft::KeySpec("mode", "keep", "channels: keep (gray 1, colour 3), rgb (3) or gray (1)")
                 .choices({"keep", "rgb", "gray"}));
