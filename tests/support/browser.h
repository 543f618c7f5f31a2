// A page rendered by a real browser: Debian's chromium, headless, run as a user would open
// a file (file://, no server). Installed by tools/setup.sh when missing. The page's DOM after
// its scripts ran comes back (--dump-dom, taken once the page has loaded), with every
// console message the browser logged.
#pragma once

#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "support/run.h"

namespace graft::test {

struct Rendered {
  int code = -1;
  std::string dom;                    ///< the DOM after the page's scripts ran
  std::vector<std::string> console;   ///< every console message and uncaught error
  std::string err;
};

/// The chromium binary, installing it (tools/setup.sh) on first use when it is missing.
inline std::string chromium() {
  static const std::string path = [] {
    auto found = run("command -v chromium");
    if (found.code != 0) {
      run("bash " + std::string(GRAFT_SOURCE_DIR) + "/tools/setup.sh");
      found = run("command -v chromium");
    }
    if (found.code != 0) throw std::runtime_error("chromium is not installed and tools/setup.sh could not install it");
    return found.out.substr(0, found.out.find('\n'));
  }();
  return path;
}

/// Renders `page` in headless chromium. As root (CI), chromium runs without its sandbox.
inline Rendered render(const std::filesystem::path& page) {
  const auto profile = temp_dir("chromium");
  const std::string cmd = chromium() + " --headless --no-sandbox --disable-gpu --no-first-run --disable-dev-shm-usage" +
                          " --user-data-dir=" + profile.string() + " --window-size=1280,2000 --enable-logging=stderr --v=0" +
                          " --dump-dom file://" + std::filesystem::absolute(page).string();
  const auto r = run(cmd);
  std::filesystem::remove_all(profile);
  Rendered out{r.code, r.out, {}, r.err};
  // [pid:tid:date:INFO:CONSOLE:12] "message", source: file:///... (12)
  static const std::regex console_line(R"(:CONSOLE[^\]]*\] (.*))");
  std::smatch m;
  for (std::size_t at = 0, end; at < r.err.size(); at = end + 1) {
    end = r.err.find('\n', at);
    if (end == std::string::npos) end = r.err.size();
    const std::string line = r.err.substr(at, end - at);
    if (std::regex_search(line, m, console_line)) out.console.push_back(m[1]);
  }
  return out;
}

/// The value of attribute `name` on the element with id `id`, or "" (from a dumped DOM).
inline std::string attribute(const std::string& dom, const std::string& tag_start, const std::string& name) {
  const auto at = dom.find(tag_start);
  if (at == std::string::npos) return {};
  const auto close = dom.find('>', at);
  const std::string tag = dom.substr(at, close - at);
  const auto a = tag.find(" " + name + "=\"");
  if (a == std::string::npos) return {};
  const auto from = a + name.size() + 3;
  return tag.substr(from, tag.find('"', from) - from);
}

}  // namespace graft::test
