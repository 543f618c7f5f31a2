// The tree's own rules (README, "Layout"), checked by tools/layers.py: lower layers of
// graft_core never include higher ones, plugins include only the SDK, no include cycle.
#define BOOST_TEST_MODULE layout
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>

#include "support/run.h"

namespace fs = std::filesystem;
using graft::test::contains;
using graft::test::run;

namespace {
const std::string script = std::string(GRAFT_SOURCE_DIR) + "/tools/layers.py";

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}
}  // namespace

BOOST_AUTO_TEST_CASE(the_source_tree_keeps_its_layers) {
  const auto r = run("python3 " + script + " " + GRAFT_SOURCE_DIR);
  BOOST_TEST(r.code == 0, r.out + r.err);
  BOOST_TEST(contains(r.out, "no include cycle"), r.out);
}

BOOST_AUTO_TEST_CASE(a_tree_that_breaks_them_is_refused_line_by_line) {
  const auto root = graft::test::temp_dir("layout");
  write(root / "framework/include/graft/config.h", "#pragma once\n");
  write(root / "framework/include/graft/host/trainer.h", "#pragma once\n#include \"graft/config.h\"\n");
  write(root / "framework/src/io/serialize.cpp", "#include \"graft/host/trainer.h\"\n");  // io -> train
  write(root / "framework/src/model/a.h", "#include \"model/b.h\"\n");
  write(root / "framework/src/model/b.h", "#include \"model/a.h\"\n");
  write(root / "plugins/x/p.cpp", "#include <graft/host/trainer.h>\n");
  const auto r = run("python3 " + script + " " + root.string());
  BOOST_TEST(r.code == 1);
  BOOST_TEST(contains(r.out, "framework/src/io/serialize.cpp (io) includes framework/include/graft/host/trainer.h (train)"), r.out);
  BOOST_TEST(contains(r.out, "include cycle: framework/src/model/a.h -> framework/src/model/b.h -> framework/src/model/a.h"), r.out);
  BOOST_TEST(contains(r.out, "plugins/x/p.cpp: a plugin includes the host header graft/host/trainer.h"), r.out);
  fs::remove_all(root);
}
