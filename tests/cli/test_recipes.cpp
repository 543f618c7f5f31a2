// Every shipped recipe trains: a short run of each (a few optimizer steps) with the real
// Fashion-MNIST files, stand-in torchvision weights (random weights of the right
// architecture, written by Python into a private hub cache) and, for CIFAR-10, a few
// records in CIFAR's binary format written by the test.
#define BOOST_TEST_MODULE recipes
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include <torch/torch.h>

#include "graft/host/png.h"
#include "graft/host/serialize.h"
#include "support/run.h"
#include "support/standins.h"

namespace fs = std::filesystem;
using graft::test::contains;
using graft::test::run;
using json = nlohmann::json;

namespace {

const std::string source_dir = GRAFT_SOURCE_DIR;
const std::string graft_bin = GRAFT_BIN;

struct Env {
  fs::path dir = graft::test::temp_dir("recipes");
  Env() {
    graft::test::write_standin_weights(dir / "torch");
    graft::test::write_cifar10(dir / "cifar-10-batches-bin", 20);
    // a picture for `graft features`: RGB, of no recipe's input size
    graft::write_png(torch::arange(3 * 50 * 40).reshape({3, 50, 40}).remainder(251).to(torch::kUInt8), (dir / "picture.png").string());
  }
  ~Env() { fs::remove_all(dir); }

  /// `graft train` in the env's directory (relative run dirs land there), offline.
  graft::test::Result train(const std::string& recipe, const std::string& sets) const {
    return run("cd " + dir.string() + " && TORCH_HOME=" + (dir / "torch").string() + " GRAFT_OFFLINE=1 " + graft_bin +
               " train " + source_dir + "/recipes/" + recipe + " --json " + sets);
  }
};

Env& env() {
  static Env e;
  return e;
}

// A few steps, small batches; validation and the final test pass only where cheap.
const std::string short_run = " --set trainer.max_steps=3 --set data.batch_size=8 --set data.workers=1";
const std::string no_eval = " --set data.val=none --set trainer.test=false";

json trained(const std::string& recipe, const std::string& sets) {
  const auto r = env().train(recipe, sets);
  BOOST_TEST_REQUIRE(r.code == 0, recipe << ": " << r.err);
  const auto j = json::parse(r.out);
  BOOST_TEST(j["steps"] == 3, recipe);
  BOOST_TEST(fs::exists(env().dir / j["checkpoint"].get<std::string>()), recipe);  // relative to where it ran
  // the run's report, and the feature maps of its model's first spatial stage
  const fs::path run_dir = env().dir / j["run_dir"].get<std::string>();
  BOOST_TEST(fs::exists(run_dir / "report.html"), recipe);
  const auto report = run(graft_bin + " report " + run_dir.string() + " -o " + (run_dir / "again.html").string());
  BOOST_TEST(report.code == 0, recipe << ": " << report.err);
  std::string layer;
  const json info = json::parse(graft::test::slurp(run_dir / "run.json"));
  for (const auto& row : info["model"]["summary"])
    if (layer.empty() && row["depth"] == 0 && row["output_shape"].size() == 4) layer = row["path"];
  BOOST_TEST_REQUIRE(!layer.empty(), recipe << ": no spatial stage in run.json's model summary");
  const auto features = run("cd " + env().dir.string() + " && " + graft_bin + " features " + source_dir + "/recipes/" + recipe +
                            " picture.png --checkpoint " + j["checkpoint"].get<std::string>() + " --layers " + layer +
                            " --out " + (run_dir / "features").string() + sets);
  BOOST_TEST(features.code == 0, recipe << ": " << features.err);
  BOOST_TEST(fs::exists(run_dir / "features/features.pth"), recipe);
  return j;
}

}  // namespace

BOOST_AUTO_TEST_CASE(fashion_mnist_cnn_trains_validates_and_tests) {
  const auto j = trained("fashion_mnist_cnn.yaml", short_run + " --set trainer.run_dir=runs/cnn");
  BOOST_TEST(j["metrics"].contains("val/top1"));
  BOOST_TEST(j["metrics"].contains("test/top1"));
  BOOST_TEST(fs::exists(env().dir / "runs/cnn/report.txt"));
}

BOOST_AUTO_TEST_CASE(fashion_mnist_resnet18_trains) { trained("fashion_mnist_resnet18.yaml", short_run + no_eval); }

BOOST_AUTO_TEST_CASE(transfer_pretrain_then_finetune_and_scratch) {
  trained("transfer/pretrain.yaml", short_run + no_eval);
  BOOST_REQUIRE(fs::exists(env().dir / "runs/transfer-pretrain/checkpoints/last.pth"));
  const auto f = env().train("transfer/finetune.yaml", short_run + no_eval);
  BOOST_TEST_REQUIRE(f.code == 0, f.err);
  BOOST_TEST(contains(f.err, "weights: runs/transfer-pretrain/checkpoints/last.pth: 18 loaded"), f.err);
  BOOST_TEST(contains(f.err, "model: surgery: replaced classifier.3"), f.err);
  trained("transfer/scratch.yaml", short_run + no_eval);
}

BOOST_AUTO_TEST_CASE(seed_recipes_with_torchvision_weights_train) {
  for (const char* r : {"seeds/resnet18_torchvision_finetune.yaml", "seeds/resnet18_finetune_head.yaml",
                        "seeds/resnet18_frozen_backbone.yaml", "seeds/resnet18_grayscale.yaml"})
    trained(r, short_run + no_eval);
}

BOOST_AUTO_TEST_CASE(cifar10_vgg16_trains_on_cifar_binary_batches) {
  trained("cifar10_vgg16.yaml", short_run + " --set data.dataset.root=" + (env().dir / "cifar-10-batches-bin").string() +
                                    " --set data.eval_batch_size=10");
}

BOOST_AUTO_TEST_CASE(seed000_multipath_net_trains_with_the_python_keys_and_its_summary) {
  const auto j = trained("seeds/multipath_net.yaml", short_run + no_eval);
  const auto sd = graft::read_torch_file((env().dir / j["checkpoint"].get<std::string>()).string())
                      .toGenericDict().at("model_state_dict").toGenericDict();
  std::vector<std::string> keys;
  for (const auto& e : sd) keys.push_back(e.key().toStringRef());
  BOOST_TEST(keys == (std::vector<std::string>{"path_a.0.weight", "path_a.0.bias", "path_b.0.weight", "path_b.0.bias",
                                               "fusion.weight", "fusion.bias", "fc.weight", "fc.bias"}),
             boost::test_tools::per_element());
  // inspect --summary: every layer by its path, with what it returns and where its values come from
  const auto r = run(graft_bin + " inspect " + source_dir + "/recipes/seeds/multipath_net.yaml --summary --json");
  BOOST_TEST_REQUIRE(r.code == 0, r.err);
  std::map<std::string, json> rows;
  const json inspected = json::parse(r.out);
  for (const auto& row : inspected["summary"]) rows[row["path"].get<std::string>()] = row;
  BOOST_TEST(rows.at("path_a")["depth"] == 0);
  BOOST_TEST(rows.at("path_a.0")["output_shape"] == json({1, 64, 28, 28}));
  BOOST_TEST(rows.at("path_b.1")["output_shape"] == json({1, 64, 14, 14}));
  BOOST_TEST(rows.at("fusion")["output_shape"] == json({1, 256, 14, 14}));
  BOOST_TEST(rows.at("fc")["output_shape"] == json({1, 10}));
  BOOST_TEST(rows.at("fusion")["origin"] == "new");
}

BOOST_AUTO_TEST_CASE(every_shipped_recipe_is_run_here) {
  // a new recipe must get a short run above
  const std::set<std::string> covered = {
      "fashion_mnist_cnn.yaml", "fashion_mnist_resnet18.yaml", "transfer/pretrain.yaml", "transfer/finetune.yaml",
      "transfer/scratch.yaml", "seeds/resnet18_torchvision_finetune.yaml", "seeds/resnet18_finetune_head.yaml",
      "seeds/resnet18_frozen_backbone.yaml", "seeds/resnet18_grayscale.yaml", "cifar10_vgg16.yaml",
      "seeds/multipath_net.yaml"};
  for (const auto& entry : fs::recursive_directory_iterator(source_dir + "/recipes")) {
    if (entry.path().extension() != ".yaml") continue;
    const auto rel = fs::relative(entry.path(), source_dir + "/recipes").string();
    BOOST_TEST(covered.count(rel) == 1u, rel << " has no short run in test_recipes");
  }
}
