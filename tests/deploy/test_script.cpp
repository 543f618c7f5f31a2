// TorchScript export (graft/host/script.h) against Python: every backbone family and a
// model after surgery, traced from C++, saved with graft.json, then loaded by Python's
// torch.jit.load (script_oracle.py): the same outputs at two batch sizes, graft.json read
// back, and torchvision's models accept the state dict. Also: the same file in C++, the
// optimized module, and models a trace cannot reproduce.
#define BOOST_TEST_MODULE script
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "graft/host/build.h"
#include "graft/host/recipe.h"
#include "graft/host/script.h"
#include "graft/host/serialize.h"
#include "support/plugins.h"
#include "support/run.h"

namespace fs = std::filesystem;
using nlohmann::json;
using graft::test::registry;

namespace {

struct Case {
  std::string id;
  std::string model;                  // the recipe's model: section (YAML)
  std::vector<std::int64_t> sample;   // one sample's shape
  json torchvision;                   // [builder, kwargs] or null
};

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {"resnet18", "{backbone: resnet18}", {3, 64, 64}, {"resnet18", json::object()}},
      {"alexnet", "{backbone: alexnet}", {3, 64, 64}, {"alexnet", json::object()}},
      {"vgg11_bn", "{backbone: vgg11_bn}", {3, 32, 32}, {"vgg11_bn", json::object()}},
      {"densenet121", "{backbone: densenet121}", {3, 64, 64}, {"densenet121", json::object()}},
      {"squeezenet1_1", "{backbone: squeezenet1_1}", {3, 64, 64}, {"squeezenet1_1", json::object()}},
      {"mobilenet_v2", "{backbone: mobilenet_v2}", {3, 64, 64}, {"mobilenet_v2", json::object()}},
      {"googlenet", "{backbone: googlenet}", {3, 64, 64},
       {"googlenet", {{"aux_logits", false}, {"init_weights", false}}}},
      {"inception_v3", "{backbone: inception_v3}", {3, 96, 96},
       {"inception_v3", {{"aux_logits", false}, {"init_weights", false}}}},
      {"simple_cnn", "{backbone: simple_cnn}", {1, 28, 28}, nullptr},
      {"lenet", "{backbone: lenet}", {3, 32, 32}, nullptr},
      // surgery: an adapted 1-channel stem, channel attention inserted after layer3, an MLP head
      {"resnet18_surgery",
       "{backbone: resnet18, in_channels: 1, surgery: [{insert_after: layer3, name: attention, with: "
       "{name: channel_attention, reduction: 8}}, {replace: fc, with: {name: mlp_head, hidden: [64], out_features: 7}}]}",
       {1, 64, 64}, nullptr},
      // seed 000's MultiPathNet from the recipe-level `branches` container, a head added after its fusion
      {"multipath",
       "{input_shape: [1, 28, 28], backbone: {name: branches, merge: concat, paths: {"
       "path_a: [{name: conv2d, out_channels: 8, kernel_size: 3, padding: 1}, {name: max_pool2d, kernel_size: 2}], "
       "path_b: [{name: conv2d, out_channels: 8, kernel_size: 5, padding: 2}, {name: avg_pool2d, kernel_size: 2}]}, "
       "then: {fusion: {name: conv2d, out_channels: 16, kernel_size: 1}}}, surgery: ["
       "{insert_after: fusion, name: pool, with: adaptive_avg_pool2d}, {insert_after: pool, name: flatten, with: flatten}, "
       "{insert_after: flatten, name: fc, with: {name: linear, out_features: 5}}]}",
       {1, 28, 28}, nullptr},
      // surgery inside Blocks: a module inserted after a BasicBlock's child, another one removed
      {"resnet18_block_edits",
       "{backbone: resnet18, surgery: [{insert_after: layer1.0.bn1, name: attention, with: channel_attention}, "
       "{remove: layer2.1.bn2}]}",
       {3, 64, 64}, nullptr},
  };
  return all;
}

graft::BuiltModel build(const std::string& model_yaml) {
  graft::Recipe r;
  r.file = "test.yaml";
  r.root = graft::test::yaml("model: " + model_yaml);
  return graft::build_model(r, registry());
}

torch::Tensor batch(std::int64_t n, const std::vector<std::int64_t>& sample, std::uint64_t seed) {
  std::vector<std::int64_t> shape{n};
  shape.insert(shape.end(), sample.begin(), sample.end());
  torch::manual_seed(seed);
  return torch::randn(shape);
}

torch::Tensor eager(graft::BuiltModel& m, const torch::Tensor& x) {
  torch::NoGradGuard g;
  m.module.ptr()->eval();
  return m.module.forward(x);
}

}  // namespace

BOOST_AUTO_TEST_CASE(python_loads_every_family_with_the_same_outputs_and_keys) {
  const auto dir = graft::test::temp_dir("script");
  json oracle_cases = json::array();
  std::map<std::string, std::vector<std::string>> keys;
  for (const auto& c : cases()) {
    auto m = build(c.model);
    // trained-looking BatchNorm statistics, so eval mode differs from train mode
    for (auto& b : m.module.ptr()->named_buffers())
      if (b.key().find("running_mean") != std::string::npos) b.value().uniform_(-0.5, 0.5);
    auto script = graft::ScriptModel::trace(m.module, c.sample);
    graft::DeployInfo info;
    info.input_shape = c.sample;
    info.classes = {"a", "b"};
    info.backbone = c.id;
    info.transforms_json = R"(["to_tensor", {"name": "normalize", "mean": [0.5], "std": [0.25]}])";
    const auto file = (dir / (c.id + ".pt")).string();
    script.save(file, info);
    graft::StateDict ref;
    const auto x1 = batch(1, c.sample, 1), x2 = batch(3, c.sample, 2);
    ref.insert("x1", x1);
    ref.insert("y1", eager(m, x1));
    ref.insert("x2", x2);
    ref.insert("y2", eager(m, x2));
    graft::save_state_dict(ref, (dir / (c.id + "_ref.pth")).string());
    oracle_cases.push_back({{"file", file}, {"reference", (dir / (c.id + "_ref.pth")).string()}, {"torchvision", c.torchvision}});
    for (const auto& p : graft::state_dict(*m.module.ptr())) keys[file].push_back(p.key());
  }
  std::ofstream(dir / "cases.json") << oracle_cases.dump();
  const auto r = graft::test::run(std::string(GRAFT_PYTHON) + " " + GRAFT_SOURCE_DIR + "/tests/deploy/script_oracle.py " +
                                  (dir / "cases.json").string());
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  const auto out = json::parse(r.out);
  for (const auto& c : oracle_cases) {
    const std::string file = c["file"];
    BOOST_TEST_CONTEXT(file) {
      const auto& got = out.at(file);
      // within 1e-5, relative to the outputs' size (inception_v3's random weights give ~1e9)
      BOOST_TEST(got["diff1"].get<double>() <= 1e-5 * std::max(1.0, got["scale1"].get<double>()));
      BOOST_TEST(got["diff2"].get<double>() <= 1e-5 * std::max(1.0, got["scale2"].get<double>()));
      BOOST_TEST(got["shape2"][0].get<int>() == 3);
      BOOST_TEST(got["keys"].get<std::vector<std::string>>() == keys[file], boost::test_tools::per_element());
      BOOST_TEST(got["graft_json"]["classes"] == json({"a", "b"}));
      BOOST_TEST(got["graft_json"]["preprocessing"]["mean"] == json({0.5}));
      BOOST_TEST(got["graft_json"]["input_shape"] == json(cases()[&c - &oracle_cases[0]].sample));
      if (!c["torchvision"].is_null()) {
        BOOST_TEST(got["torchvision"].get<bool>());
        BOOST_TEST(got["torchvision_diff"].get<double>() <= 1e-5 * std::max(1.0, got["scale2"].get<double>()));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(the_file_loads_back_in_cpp_and_the_optimized_module_agrees) {
  const auto dir = graft::test::temp_dir("script_cpp");
  auto m = build("{backbone: resnet18, num_classes: 10}");
  for (auto& b : m.module.ptr()->named_buffers())
    if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 2.0);
  const std::vector<std::int64_t> sample{3, 64, 64};
  graft::DeployInfo info;
  info.input_shape = sample;
  info.classes = {"zero", "one"};
  info.recipe_yaml = "model: {backbone: resnet18}\n";
  graft::ScriptModel::trace(m.module, sample).save((dir / "m.pt").string(), info);

  graft::DeployInfo back;
  auto loaded = graft::ScriptModel::load((dir / "m.pt").string(), &back);
  BOOST_TEST(back.input_shape == sample, boost::test_tools::per_element());
  BOOST_TEST(back.classes == info.classes, boost::test_tools::per_element());
  BOOST_TEST(back.recipe_yaml == info.recipe_yaml);
  const auto x = batch(5, sample, 3);
  const auto y = eager(m, x);
  BOOST_TEST((loaded.forward(x) - y).abs().max().item<double>() <= 1e-5);
  loaded.optimize();
  BOOST_TEST(loaded.optimized());
  const auto fast = loaded.forward(x);
  BOOST_TEST((fast - y).abs().max().item<double>() <= 1e-4);
  BOOST_TEST((fast.argmax(1) == y.argmax(1)).all().item<bool>());
  BOOST_CHECK_THROW(loaded.save((dir / "again.pt").string(), info), graft::Error);
}

BOOST_AUTO_TEST_CASE(a_file_that_is_not_an_export_is_refused_naming_it) {
  const auto dir = graft::test::temp_dir("script_bad");
  std::ofstream(dir / "junk.pt") << "not a zip";
  auto e = graft::test::one_line_error_of([&] { graft::ScriptModel::load((dir / "junk.pt").string()); });
  BOOST_TEST(std::string(e.what()).find("junk.pt") != std::string::npos);
  e = graft::test::one_line_error_of([&] { graft::ScriptModel::load((dir / "absent.pt").string()); });
  BOOST_TEST(std::string(e.what()).find("absent.pt: no such file") != std::string::npos);
  // graft's plain state dicts are zip files too, but not TorchScript
  graft::StateDict sd;
  sd.insert("w", torch::ones({2}));
  graft::save_state_dict(sd, (dir / "weights.pth").string());
  e = graft::test::one_line_error_of([&] { graft::ScriptModel::load((dir / "weights.pth").string()); });
  BOOST_TEST(std::string(e.what()).find("weights.pth: not a TorchScript file") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_model_the_trace_cannot_reproduce_is_refused_naming_the_stage) {
  graft::Registry r;
  r.scan({graft::test::builtin_plugin_dir(), std::string(GRAFT_FIXTURE_DIR) + "/libgraft_test_untraceable.so"});
  for (const std::string module : {"test_batch_view", "test_batch_branch"}) {
    graft::Recipe recipe;
    recipe.file = "test.yaml";
    recipe.root = graft::test::yaml("model: {backbone: simple_cnn, surgery: [{insert_after: classifier.0, name: odd, with: " +
                                    module + "}]}");
    auto m = graft::build_model(recipe, r);
    const auto e = graft::test::one_line_error_of([&] { graft::ScriptModel::trace(m.module, {1, 28, 28}); });
    BOOST_TEST_CONTEXT(e.what()) {
      BOOST_TEST(std::string(e.what()).find("module 'classifier.odd'") != std::string::npos);
      BOOST_TEST(std::string(e.what()).find("cannot be exported as a trace") != std::string::npos);
    }
  }
  // the model itself is left in the mode it was in
  graft::Recipe recipe;
  recipe.file = "test.yaml";
  recipe.root = graft::test::yaml("model: {backbone: simple_cnn}");
  auto m = graft::build_model(recipe, r);
  m.module.ptr()->train();
  graft::ScriptModel::trace(m.module, {1, 28, 28});
  BOOST_TEST(m.module.ptr()->is_training());
}
