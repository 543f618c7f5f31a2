// A directory tree of images, one folder per class, as torchvision's ImageFolder reads it:
// classes are the sorted names of the class folders, images (.png, .jpg, .jpeg, found
// recursively) are sorted by path within each class. Images are decoded in get(), or by the
// first transform (get_lazy: a crop decodes only its region).
#include <algorithm>
#include <filesystem>

#include "decode.h"

namespace {

namespace fs = std::filesystem;
using graft::Config;
using graft::DataSource;
using graft::Dataset;
using graft::Sample;
using namespace graft::data;

bool is_image(const fs::path& p) {
  std::string ext = p.extension().string();
  for (auto& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

std::vector<std::string> class_folders(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_directory()) names.push_back(it->path().filename().string());
  if (ec) throw graft::Error::usage("image_folder: cannot list " + dir + ": " + ec.message());
  std::sort(names.begin(), names.end());
  return names;
}

class FolderSplit : public Dataset {
 public:
  FolderSplit(std::vector<std::string> files, std::vector<std::int64_t> targets, std::vector<std::string> classes,
              ColorMode mode)
      : files_(std::move(files)), targets_(std::move(targets)), classes_(std::move(classes)), mode_(mode) {}

  std::int64_t size() const override { return static_cast<std::int64_t>(files_.size()); }
  Sample get(std::int64_t index) const override {
    if (index < 0 || index >= size()) throw graft::Error::runtime("image_folder: sample index out of range");
    const auto i = static_cast<std::size_t>(index);
    return {decode_image(files_[i], mode_), targets_[i]};
  }
  graft::LazySample get_lazy(std::int64_t index) const override {
    if (index < 0 || index >= size()) throw graft::Error::runtime("image_folder: sample index out of range");
    const auto i = static_cast<std::size_t>(index);
    return {open_image(files_[i], mode_), targets_[i]};
  }
  std::vector<std::int64_t> targets() const override { return targets_; }
  std::vector<std::string> classes() const override { return classes_; }

 private:
  std::vector<std::string> files_;
  std::vector<std::int64_t> targets_;
  std::vector<std::string> classes_;
  ColorMode mode_;
};

class ImageFolder : public DataSource {
 public:
  explicit ImageFolder(const Config& c) {
    const auto mode = c.get<std::string>("mode");
    mode_ = mode == "rgb" ? ColorMode::rgb : mode == "gray" ? ColorMode::gray : ColorMode::keep;

    const std::vector<std::string> names = {"train", "val", "test"};
    for (const auto& name : names) {
      if (!c.has(name)) continue;
      const auto dir = c.get<std::string>(name);
      if (!is_dir(dir)) c[name].fail("'" + dir + "' is not a directory");
      dirs_.emplace_back(name, dir);
    }
    if (c.has("root")) {
      const auto root = c.get<std::string>("root");
      if (!is_dir(root)) c["root"].fail("'" + root + "' is not a directory");
      bool conventional = false;
      for (const auto& name : names) {
        if (!is_dir(root + "/" + name)) continue;
        conventional = true;
        if (!c.has(name)) dirs_.emplace_back(name, root + "/" + name);
      }
      if (!conventional && !c.has("train")) dirs_.emplace_back("train", root);
    }
    if (dirs_.empty()) c.fail("image_folder needs root (or train/val/test directories)");
    std::sort(dirs_.begin(), dirs_.end(), [&](const auto& a, const auto& b) {
      return std::find(names.begin(), names.end(), a.first) < std::find(names.begin(), names.end(), b.first);
    });
    // Every split shares the class list of the first one (train when there is one), so a
    // class index means the same thing in all of them.
    classes_ = class_folders(dirs_.front().second);
    if (classes_.empty()) throw graft::Error::usage("image_folder: " + dirs_.front().second + " has no class folders");
  }

  std::vector<std::string> splits() const override {
    std::vector<std::string> s;
    for (const auto& d : dirs_) s.push_back(d.first);
    return s;
  }

  std::shared_ptr<Dataset> open(const std::string& split) const override {
    const auto it = std::find_if(dirs_.begin(), dirs_.end(), [&](const auto& d) { return d.first == split; });
    if (it == dirs_.end()) unknown_split("image_folder", split, splits());
    const auto& dir = it->second;
    for (const auto& name : class_folders(dir))
      if (std::find(classes_.begin(), classes_.end(), name) == classes_.end())
        bad_file(dir + "/" + name, "a class folder that " + dirs_.front().second + " does not have (classes: " +
                                       join(classes_) + ")");
    std::vector<std::string> files;
    std::vector<std::int64_t> targets;
    for (std::size_t k = 0; k < classes_.size(); ++k) {
      const auto class_dir = dir + "/" + classes_[k];
      if (!is_dir(class_dir)) continue;
      // torchvision's order: by folder, then by file name within a folder.
      std::vector<std::pair<std::string, std::string>> found;
      std::error_code ec;
      for (fs::recursive_directory_iterator r(class_dir, fs::directory_options::follow_directory_symlink, ec), end;
           !ec && r != end; r.increment(ec))
        if (r->is_regular_file() && is_image(r->path()))
          found.emplace_back(r->path().parent_path().string(), r->path().filename().string());
      if (ec) bad_file(class_dir, "cannot list: " + ec.message());
      if (found.empty() && it == dirs_.begin()) bad_file(class_dir, "no .png, .jpg or .jpeg images in this class folder");
      std::sort(found.begin(), found.end());
      for (auto& [folder, name] : found) {
        files.push_back(folder + "/" + name);
        targets.push_back(static_cast<std::int64_t>(k));
      }
    }
    if (files.empty()) bad_file(dir, "no images in the class folders");
    return std::make_shared<FolderSplit>(std::move(files), std::move(targets), classes_, mode_);
  }

 private:
  std::vector<std::pair<std::string, std::string>> dirs_;  // split -> directory
  std::vector<std::string> classes_;
  ColorMode mode_ = ColorMode::keep;
};

std::shared_ptr<DataSource> make_image_folder(const Config& c) { return std::make_shared<ImageFolder>(c); }


}  // namespace

GRAFT_PLUGIN(dataset, "image_folder", make_image_folder,
             "Images in class folders (DIR/<class>/**/*.png|jpg|jpeg) like torchvision's ImageFolder. Splits: "
             "root/train, root/val, root/test where they exist (else root itself is the train split), or "
             "directories given as train:/val:/test:. Classes come from the first split's folders. Decoded lazily.",
             graft::KeySpec("root", graft::ValueType::string, "~",
                            "directory with train/ val/ test/ subfolders, or with the class folders themselves"),
             graft::KeySpec("train", graft::ValueType::string, "~", "the train split's directory (overrides root)"),
             graft::KeySpec("val", graft::ValueType::string, "~", "the val split's directory (overrides root)"),
             graft::KeySpec("test", graft::ValueType::string, "~", "the test split's directory (overrides root)"),
             graft::KeySpec("mode", "keep", "channels: keep (gray 1, colour 3), rgb (3) or gray (1)")
                 .choices({"keep", "rgb", "gray"}));
