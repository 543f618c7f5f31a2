// The run report and the feature-map pages, rendered in a real browser (headless
// chromium): no script error, every chart drew its data, the confusion matrix holds the
// run's numbers. Runs: one epoch with validation, one without, one stopped by a NaN, and a
// two-epoch run that wrote the report at each epoch end.
#define BOOST_TEST_MODULE report
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <regex>
#include <sstream>

#include "graft/host/png.h"
#include "support/browser.h"
#include "support/run.h"

namespace fs = std::filesystem;
using graft::test::contains;
using graft::test::run;
using graft::test::slurp;
using json = nlohmann::json;

namespace {

const std::string graft_bin = GRAFT_BIN;
const std::string source_dir = GRAFT_SOURCE_DIR;
const std::string recipe = source_dir + "/recipes/fashion_mnist_cnn.yaml";
// small and quick: 5 classes, 40 training images each, steps logged one by one
const std::string small = " --progress 0 --set data.classes=[0,1,2,3,4] --set model.backbone.num_classes=5 --set data.per_class=40 --set data.batch_size=20"
                          " --set trainer.log_every=1 --set data.workers=1";

struct Runs {
  fs::path dir = graft::test::temp_dir("report");
  fs::path one_epoch = dir / "one-epoch", no_val = dir / "no-val", nan = dir / "nan", two = dir / "two-epochs";
  graft::test::Result nan_run, two_run;
  Runs() {
    auto train = [&](const fs::path& to, const std::string& sets) {
      return run(graft_bin + " train " + recipe + small + " --run-dir " + to.string() + sets);
    };
    const auto a = train(one_epoch, " --set trainer.epochs=1");
    BOOST_TEST_REQUIRE(a.code == 0, a.err);
    const auto b = train(no_val, " --set trainer.epochs=1 --set data.val=none --set trainer.test=false");
    BOOST_TEST_REQUIRE(b.code == 0, b.err);
    nan_run = train(nan, " --set trainer.epochs=1 --set optimizer.lr=1e30 --set scheduler=null");
    two_run = run(graft_bin + " --log-level debug train " + recipe + small + " --run-dir " + two.string() + " --set trainer.epochs=2");
    BOOST_TEST_REQUIRE(two_run.code == 0, two_run.err);
  }
  ~Runs() { fs::remove_all(dir); }
};

Runs& runs() {
  static Runs r;
  return r;
}

// Every <canvas ...> tag of a DOM.
std::vector<std::string> canvases(const std::string& dom) {
  std::vector<std::string> out;
  for (std::size_t at = 0; (at = dom.find("<canvas", at)) != std::string::npos; ++at) out.push_back(dom.substr(at, dom.find('>', at) - at));
  return out;
}

std::string attr(const std::string& tag, const std::string& name) { return graft::test::attribute(tag, "<", name); }

// Renders `page` and checks what every page must: no console message, no script error,
// every chart drew data points in its datasets' colours. Returns the DOM.
std::string rendered_ok(const fs::path& page, std::size_t min_charts) {
  const auto r = graft::test::render(page);
  BOOST_TEST_REQUIRE(r.code == 0, r.err);
  BOOST_TEST(r.console.empty(), page << ": " << (r.console.empty() ? "" : r.console.front()));
  BOOST_TEST(graft::test::attribute(r.dom, "<html", "data-errors").empty(), page);
  const auto tags = canvases(r.dom);
  BOOST_TEST(tags.size() >= min_charts, page);
  BOOST_TEST(graft::test::attribute(r.dom, "<body", "data-charts") == std::to_string(tags.size()), page);
  for (const auto& tag : tags) {
    const std::string pixels = attr(tag, "data-data-pixels");
    BOOST_TEST_REQUIRE(!pixels.empty(), tag);
    BOOST_TEST(std::stol(pixels) > 0, tag << ": no pixel of its data drawn");
    BOOST_TEST(std::stol(attr(tag, "data-points")) > 0, tag);
  }
  return r.dom;
}

// The confusion matrix report.txt holds (written by the confusion_matrix metric plugin).
std::vector<std::vector<long>> text_confusion(const std::string& report, std::size_t k) {
  std::istringstream in(report.substr(report.find("confusion matrix over")));
  std::string line;
  std::getline(in, line);  // title
  std::getline(in, line);  // class names
  std::vector<std::vector<long>> m;
  while (m.size() < k && std::getline(in, line)) {
    std::vector<std::string> words;
    std::istringstream w(line);
    for (std::string s; w >> s;) words.push_back(s);
    std::vector<long> row;
    for (std::size_t j = words.size() - k; j < words.size(); ++j) row.push_back(std::stol(words[j]));
    m.push_back(row);
  }
  return m;
}

// The numbers of the confusion table `id` in a DOM, row by row.
std::vector<std::vector<long>> dom_confusion(const std::string& dom, const std::string& id) {
  const auto at = dom.find("id=\"" + id + "\"");
  BOOST_REQUIRE(at != std::string::npos);
  const std::string table = dom.substr(at, dom.find("</table>", at) - at);
  std::vector<std::vector<long>> m;
  static const std::regex cell(R"(<td[^>]*>(\d+)</td>)");
  for (std::size_t row = table.find("<tr>", table.find("</tr>")); row != std::string::npos; row = table.find("<tr>", row + 1)) {
    const std::string tr = table.substr(row, table.find("</tr>", row) - row);
    std::vector<long> r;
    for (std::sregex_iterator it(tr.begin(), tr.end(), cell), end; it != end; ++it) r.push_back(std::stol((*it)[1]));
    m.push_back(r);
  }
  return m;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_one_epoch_run_report_draws_every_chart_and_the_runs_confusion_matrix) {
  const auto page = runs().one_epoch / "report.html";
  BOOST_REQUIRE(fs::exists(page));
  const std::string html = slurp(page);
  BOOST_TEST(!contains(html, "http://"));   // self-contained: nothing fetched
  BOOST_TEST(!contains(html, "https://www.chartjs.org\"") );
  BOOST_TEST(!contains(html, "<script src"));
  BOOST_TEST(contains(html, "Chart.js v"));  // the library is inlined
  const std::string dom = rendered_ok(page, 6);
  for (const char* id : {"chart-loss-step", "chart-lr-step", "chart-loss-epoch", "chart-acc-epoch", "chart-per-class-0"})
    BOOST_TEST(contains(dom, std::string("id=\"") + id + "\""), id);
  // the test split's confusion matrix, the same numbers as report.txt's
  const auto expected = text_confusion(slurp(runs().one_epoch / "report.txt"), 5);
  const auto shown = dom_confusion(dom, "confusion-0");
  BOOST_TEST(shown.size() == 5u);
  BOOST_TEST(shown == expected);
  long total = 0;
  for (const auto& r : shown)
    for (auto c : r) total += c;
  BOOST_TEST(total == 5000);  // the 5 classes' test images
  BOOST_TEST(graft::test::attribute(dom, "<table class=\"confusion\"", "data-split") == "test");
  // misclassified thumbnails, with labels; the model, the checkpoints, the recipe
  BOOST_TEST(contains(dom, "<img src=\"data:image/png;base64,"));
  BOOST_TEST(contains(dom, "predicted <b>"));
  BOOST_TEST(contains(dom, "simple_cnn"));
  BOOST_TEST(contains(dom, "last.pth"));
  BOOST_TEST(contains(dom, "Resolved recipe"));
  BOOST_TEST(contains(dom, "finished (epochs)"));
}

BOOST_AUTO_TEST_CASE(a_run_without_validation_renders) {
  const auto page = runs().no_val / "report.html";
  BOOST_REQUIRE(fs::exists(page));
  const std::string dom = rendered_ok(page, 3);
  BOOST_TEST(!contains(dom, "val/loss"));
  BOOST_TEST(contains(dom, "No evaluation yet"));
}

BOOST_AUTO_TEST_CASE(a_run_stopped_by_a_nan_renders_and_says_why) {
  BOOST_TEST(runs().nan_run.code == 1, runs().nan_run.err);
  BOOST_TEST(contains(runs().nan_run.err, "non-finite loss"));
  const auto page = runs().nan / "report.html";
  BOOST_REQUIRE(fs::exists(page));
  const std::string dom = rendered_ok(page, 1);
  BOOST_TEST(contains(dom, "status-failed"));
  BOOST_TEST(contains(dom, "non-finite loss"));
}

BOOST_AUTO_TEST_CASE(training_writes_the_report_at_every_epoch_end_and_at_the_end) {
  // --log-level debug: a line for each write
  std::size_t writes = 0;
  for (std::size_t at = 0; (at = runs().two_run.err.find("report.html written in", at)) != std::string::npos; ++at) ++writes;
  BOOST_TEST(writes >= 2u, runs().two_run.err);  // epoch ends may coalesce; the end always writes
  const auto info = json::parse(slurp(runs().two / "run.json"));
  BOOST_TEST(info["status"] == "finished");
  BOOST_TEST(info["epoch"] == 2);
  BOOST_TEST(info["eval"].contains("val"));
  BOOST_TEST(info["eval"].contains("test"));
  BOOST_TEST(info["checkpoints"].contains("last.pth"));
  rendered_ok(runs().two / "report.html", 6);
}

BOOST_AUTO_TEST_CASE(graft_report_overlays_several_runs_in_one_page) {
  const auto out = runs().dir / "compare.html";
  const auto r = run(graft_bin + " report " + runs().one_epoch.string() + " " + runs().two.string() + " " +
                     runs().no_val.string() + " -o " + out.string());
  BOOST_TEST_REQUIRE(r.code == 0, r.err);
  const std::string dom = rendered_ok(out, 6);
  BOOST_TEST(contains(dom, "id=\"run-2\""));
  BOOST_TEST(contains(dom, "id=\"confusion-1\""));
  const std::string html = slurp(out);
  BOOST_TEST(contains(html, "one-epoch train/loss"));  // the runs' series side by side
  BOOST_TEST(contains(html, "two-epochs train/loss"));
}

BOOST_AUTO_TEST_CASE(graft_report_refuses_what_is_not_a_run_dir) {
  const auto r = run(graft_bin + " report " + runs().dir.string() + "/nothing-here");
  BOOST_TEST(r.code == 2);
  BOOST_TEST(contains(r.err, "nothing-here: no such run dir"), r.err);
  const auto e = run(graft_bin + " report " + source_dir + "/recipes");
  BOOST_TEST(e.code == 2);
  BOOST_TEST(contains(e.err, "not a run dir"), e.err);
}

BOOST_AUTO_TEST_CASE(features_writes_tensors_python_loads_pictures_and_an_index_that_renders) {
  const auto dir = runs().dir / "features";
  fs::create_directories(dir);
  // two pictures: a gray one at the model's size and an RGB one of another size
  const auto gray = dir / "shirt.png", rgb = dir / "photo.png";
  graft::write_png(torch::arange(28 * 28).reshape({1, 28, 28}).remainder(256).to(torch::kUInt8), gray.string());
  graft::write_png(torch::randint(0, 255, {3, 40, 60}).to(torch::kUInt8), rgb.string());
  const auto out = dir / "out";
  const auto r = run(graft_bin + " features " + recipe + " --checkpoint " + (runs().one_epoch / "checkpoints/last.pth").string() +
                     " " + gray.string() + " " + rgb.string() + " --layers features.0,features.4,classifier --out " + out.string() +
                     " --set model.backbone.num_classes=5 --set data.classes=[0,1,2,3,4]");
  BOOST_TEST_REQUIRE(r.code == 0, r.err);
  BOOST_TEST(contains(r.out, "features.0"));
  const auto py = run(std::string(GRAFT_PYTHON) + " -c \"import torch; f = torch.load('" + (out / "features.pth").string() +
                      "'); print({k: list(v.shape) for k, v in f.items()})\"");
  BOOST_TEST_REQUIRE(py.code == 0, py.err);
  BOOST_TEST(contains(py.out, "'features.0': [2, "), py.out);
  BOOST_TEST(contains(py.out, "'classifier': [2, 5]"), py.out);
  for (const char* f : {"0-shirt/input.png", "0-shirt/features.0.png", "0-shirt/features.0_overlay.png", "1-photo/features.4.png",
                        "1-photo/classifier.png"})
    BOOST_TEST(fs::exists(out / f), f);
  const auto page = graft::test::render(out / "index.html");
  BOOST_TEST_REQUIRE(page.code == 0, page.err);
  BOOST_TEST(page.console.empty(), (page.console.empty() ? "" : page.console.front()));
  BOOST_TEST(graft::test::attribute(page.dom, "<body", "data-images-broken") == "0");
  BOOST_TEST(std::stoi(graft::test::attribute(page.dom, "<body", "data-images-loaded")) >= 9);
  BOOST_TEST(contains(page.dom, "features.0 <span class=\"shape\">[2, "));
}

BOOST_AUTO_TEST_CASE(features_tap_paths_inside_blocks_and_nested_paths_together) {
  // ResNet-18: layer1.0 is a BasicBlock (its own forward), layer1 the Stages around it
  const auto dir = runs().dir / "resnet";
  fs::create_directories(dir);
  const auto image = dir / "x.png";
  graft::write_png(torch::full({1, 28, 28}, 200).to(torch::kUInt8), image.string());
  const auto r = run(graft_bin + " features " + source_dir + "/recipes/fashion_mnist_resnet18.yaml " + image.string() +
                     " --layers layer1.0.conv2,layer1,layer4.1.bn2 --out " + (dir / "out").string());
  BOOST_TEST_REQUIRE(r.code == 0, r.err);
  BOOST_TEST(contains(r.err, "untrained model"));
  BOOST_TEST(contains(r.out, "layer1.0.conv2"));
  BOOST_TEST(contains(r.out, "layer4.1.bn2"));
  BOOST_TEST(fs::exists(dir / "out/0-x/layer4.1.bn2.png"));
}

BOOST_AUTO_TEST_CASE(features_of_a_path_that_does_not_exist_says_what_does) {
  const auto r = run(graft_bin + " features " + recipe + " " + source_dir + "/README.md --layers featurs.0");
  BOOST_TEST(r.code == 2);
  BOOST_TEST(contains(r.err, "no module 'featurs' in the model (did you mean 'features'?)"), r.err);
  const auto missing = run(graft_bin + " features " + recipe + " /no/such.png --layers features");
  BOOST_TEST(missing.code == 2);
  BOOST_TEST(contains(missing.err, "/no/such.png"), missing.err);
}
