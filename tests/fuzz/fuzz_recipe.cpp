// A recipe's YAML text to a checked plan: graft::load_recipe (YAML, `base:` inheritance,
// --set overrides) then graft::check_recipe against the built-in plugins (built next to
// this binary). The input is the recipe file; a line "#@ file NAME" starts another file of
// the same folder (for `base: NAME`), a line "#@ set KEY=VALUE" adds an override. Both are
// YAML comments, so any recipe is a seed as it is.
#include <cctype>
#include <filesystem>
#include <map>
#include <sstream>

#include "graft/host/check.h"
#include <graft/host/recipe.h>
#include <graft/host/registry.h>

#include "fuzz_util.h"

namespace {

const graft::Registry& registry() {
  static const graft::Registry* r = [] {
    auto* reg = new graft::Registry();
    reg->scan(graft::Registry::default_search_path());
    if (reg->list().empty()) {
      std::fprintf(stderr, "fuzz_recipe: no plugins found next to the binary\n");
      std::abort();
    }
    return reg;
  }();
  return *r;
}

std::string safe_name(const std::string& s) {
  std::string out;
  for (char c : s)
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.') out += c;
  if (out.empty() || out == "." || out == ".." || out.size() > 64) return "base.yaml";
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  registry();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fs = std::filesystem;
  static const std::string dir = graft::fuzz::scratch_dir() + "/recipe";
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir);

  std::map<std::string, std::string> files{{"recipe.yaml", ""}};
  std::vector<std::string> overrides;
  std::string* current = &files["recipe.yaml"];
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("#@ file ", 0) == 0 && files.size() < 8) {
      current = &files[safe_name(line.substr(8))];
    } else if (line.rfind("#@ set ", 0) == 0 && overrides.size() < 8) {
      overrides.push_back(line.substr(7));
    } else {
      *current += line;
      *current += '\n';
    }
  }
  for (const auto& [name, text] : files) graft::fuzz::write_file("recipe/" + name, text.data(), text.size());

  graft::fuzz::expect_clean([&] {
    const graft::Recipe recipe = graft::load_recipe(dir + "/recipe.yaml", overrides);
    graft::check_recipe(recipe, registry());
  });
  return 0;
}
