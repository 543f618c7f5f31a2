// Surgery, head reset and input-channel adaptation, checked against the same edits done
// by hand on torchvision models in Python (the seeds' snippets).
#define BOOST_TEST_MODULE surgery
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "graft/host/build.h"
#include "graft/host/surgery.h"
#include "support/plugins.h"
#include "support/run.h"

namespace fs = std::filesystem;
using graft::test::contains;
using graft::test::registry;

namespace {

struct Oracle {
  fs::path dir = graft::test::temp_dir("surgery");
  nlohmann::json layouts;
  Oracle() {
    const auto r = graft::test::run(std::string(GRAFT_PYTHON) + " " + GRAFT_SOURCE_DIR +
                                    "/tests/framework/surgery_oracle.py " + dir.string());
    if (r.code != 0) throw std::runtime_error(r.err);
    layouts = nlohmann::json::parse(graft::test::slurp(dir / "layouts.json"));
  }
  ~Oracle() { fs::remove_all(dir); }
  std::string operator()(const std::string& n) const { return (dir / n).string(); }
};
const Oracle& oracle() {
  static Oracle o;
  return o;
}

graft::BuiltModel build(const std::string& yaml) {
  const auto dir = graft::test::temp_dir("recipe");
  std::ofstream(dir / "r.yaml") << yaml;
  const auto recipe = graft::load_recipe((dir / "r.yaml").string());
  auto built = graft::build_model(recipe, registry());
  fs::remove_all(dir);
  return built;
}

std::string error_of(const std::string& yaml) {
  try {
    build(yaml);
  } catch (const graft::Error& e) {
    BOOST_TEST(e.exit_code() == 2);
    return e.what();
  }
  BOOST_FAIL("expected an error");
  return "";
}

nlohmann::json layout(const torch::nn::Module& m) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& item : graft::state_dict(m)) out.push_back({item.key(), item.value().sizes().vec()});
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(adapt_input_conv_equals_timm) {
  const auto d = graft::read_torch_file(oracle()("adapt.pth")).toGenericDict();
  const auto w = d.at("weight").toTensor();
  for (int n : {1, 2, 4, 6}) {
    const auto expected = d.at("in" + std::to_string(n)).toTensor();
    BOOST_TEST(torch::allclose(graft::adapt_input_conv(n, w), expected, 1e-6, 1e-6), n);
  }
  BOOST_TEST(torch::equal(graft::adapt_input_conv(3, w), w));
}

BOOST_AUTO_TEST_CASE(seed000_mlp_head_and_channel_attention) {
  auto built = build("model:\n  backbone: resnet18\n  weights: " + oracle()("resnet18.pth") +
                     "\n  surgery:\n"
                     "    - replace: fc\n      with: {name: mlp_head, hidden: [512], dropout: 0.5, out_features: 10}\n"
                     "    - append_to: layer3\n      name: channel_attn\n      with: channel_attention\n");
  BOOST_TEST(layout(*built.module.ptr()) == oracle().layouts["seed000"]);
  built.module.ptr()->eval();
  BOOST_TEST(built.module.forward(torch::randn({2, 3, 64, 64})).sizes() == torch::IntArrayRef({2, 10}));
  BOOST_TEST(built.origin.at("layer1.0.conv1.weight") == "loaded");
  BOOST_TEST(built.origin.at("fc.0.weight") == "new");
  BOOST_TEST(built.origin.at("layer3.channel_attn.fc.0.weight") == "new");
  BOOST_TEST(built.changes.size() == 2u);
  BOOST_TEST(contains(built.changes[0], "replaced fc with mlp_head (input [2, 512])"));
}

BOOST_AUTO_TEST_CASE(seed001_vgg16_classifier_edits) {
  const auto add = build("model:\n  backbone: vgg16\n  input_shape: [3, 64, 64]\n  surgery:\n"
                         "    - {append_to: classifier, name: add_linear, with: {name: linear, out_features: 10}}\n");
  BOOST_TEST(layout(*add.module.ptr()) == oracle().layouts["seed001_add"]);
  const auto rep = build("model:\n  backbone: vgg16\n  surgery:\n    - {replace: classifier.6, with: {name: linear, out_features: 10}}\n");
  BOOST_TEST(layout(*rep.module.ptr()) == oracle().layouts["seed001_replace"]);
}

BOOST_AUTO_TEST_CASE(num_classes_and_in_channels_after_loading) {
  auto built = build("model:\n  backbone: densenet121\n  weights: " + oracle()("densenet121.pth") +
                     "\n  in_channels: 1\n  num_classes: 5\n");
  BOOST_TEST(layout(*built.module.ptr()) == oracle().layouts["densenet_gray"]);
  const auto sd = graft::state_dict(*built.module.ptr());
  const auto expected = graft::read_torch_file(oracle()("adapt.pth")).toGenericDict().at("densenet_conv0_in1").toTensor();
  BOOST_TEST(torch::allclose(sd["features.conv0.weight"], expected, 1e-6, 1e-6));
  BOOST_TEST(built.origin.at("features.conv0.weight") == "adapted");
  BOOST_TEST(built.origin.at("classifier.weight") == "new");
  BOOST_TEST(built.origin.at("features.denseblock1.denselayer1.conv1.weight") == "loaded");
  BOOST_REQUIRE(built.changes.size() == 2u);
  BOOST_TEST(contains(built.changes[0], "features.conv0 adapted from 3 to 1 input channels (pretrained weight summed over RGB)"));
  BOOST_TEST(contains(built.changes[1], "head classifier reset from 1000 to 5 outputs (the pretrained head is dropped)"));
  built.module.ptr()->eval();
  BOOST_TEST(built.module.forward(torch::randn({1, 1, 64, 64})).sizes() == torch::IntArrayRef({1, 5}));
}

BOOST_AUTO_TEST_CASE(insert_remove_and_blocks) {
  auto built = build("model:\n  backbone: resnet18\n  surgery:\n"
                     "    - {insert_after: layer4, name: drop, with: {name: dropout, p: 0.2}}\n"
                     "    - {insert_before: layer1, name: extra, with: {name: conv2d, out_channels: 64, padding: 1}}\n"
                     "    - {replace: layer1.0.conv1, with: {name: conv2d, out_channels: 64, padding: 1, bias: false}}\n"
                     "    - {remove: maxpool}\n");
  std::vector<std::string> names;
  for (const auto& c : built.module.ptr()->named_children()) names.push_back(c.key());
  BOOST_TEST((names == std::vector<std::string>{"conv1", "bn1", "relu", "extra", "layer1", "layer2", "layer3",
                                                "layer4", "drop", "avgpool", "flatten", "fc"}));
  BOOST_TEST(graft::state_dict(*built.module.ptr())["extra.weight"].size(1) == 64);  // in_channels inferred
  built.module.ptr()->eval();
  BOOST_TEST(built.module.forward(torch::randn({1, 3, 32, 32})).sizes() == torch::IntArrayRef({1, 1000}));
}

BOOST_AUTO_TEST_CASE(surgery_errors_name_the_step) {
  BOOST_TEST(contains(error_of("model:\n  backbone: resnet18\n  surgery:\n    - {replace: layerr3, with: relu}\n"),
                      "r.yaml:4:17: model.surgery.0.replace: no module 'layerr3' in the model (did you mean 'layer3'?)"));
  BOOST_TEST(contains(error_of("model:\n  backbone: resnet18\n  surgery:\n    - {remove: layer1.0.bn1}\n"),
                      "cannot remove 'layer1.0.bn1': its parent is a BasicBlock"));
  BOOST_TEST(contains(error_of("model:\n  backbone: resnet18\n  surgery:\n    - {remove: fc, replace: fc}\n"),
                      "one operation per step"));
  BOOST_TEST(contains(error_of("model:\n  backbone: resnet18\n  surgery:\n    - {append_to: fc, name: x, with: relu}\n"),
                      "not a Stages container"));
  BOOST_TEST(contains(error_of("model:\n  backbone: resnet18\n  surgery:\n    - {replace: fc, with: {name: linear}}\n"),
                      "missing required key 'out_features'"));
  BOOST_TEST(contains(error_of("model:\n  backbone: resnet18\n  surgery:\n    - {replace: fc, with: {name: lineer, out_features: 3}}\n"),
                      "unknown module 'lineer' (did you mean 'linear'?)"));
}

BOOST_AUTO_TEST_CASE(seed000_and_seed002_init_rules) {
  // seed 002's "common practise" loop, as one recipe block, on a model whose backbone is
  // loaded: only the new head is initialised unless only: all is given.
  const std::string rules =
      "  init:\n"
      "    - {modules: Conv2d, weight: {name: kaiming_normal, mode: fan_out, nonlinearity: relu}, bias: {name: constant, val: 0.0}}\n"
      "    - {modules: BatchNorm2d, weight: {name: constant, val: 1.0}, bias: {name: constant, val: 0.0}, only: all}\n"
      "    - {modules: Linear, weight: xavier_normal, bias: {name: constant, val: 0.0}}\n";
  const auto loaded = graft::load_state_dict(oracle()("resnet18.pth"));
  auto built = build("model:\n  backbone: resnet18\n  weights: " + oracle()("resnet18.pth") +
                     "\n  num_classes: 10\n  surgery:\n    - {insert_before: fc, name: proj, with: {name: linear, out_features: 512}}\n" +
                     rules.substr(0, rules.find("    - {modules: Conv2d")) +
                     rules.substr(rules.find("    - {modules: BatchNorm2d")));
  const auto sd = graft::state_dict(*built.module.ptr());
  BOOST_TEST(torch::equal(sd["conv1.weight"], loaded["conv1.weight"]));  // loaded: untouched
  BOOST_TEST(torch::equal(sd["bn1.weight"], torch::ones({64})));         // only: all
  BOOST_TEST(built.origin.at("bn1.weight") == "initialised");
  BOOST_TEST(built.origin.at("fc.weight") == "initialised");
  BOOST_TEST(built.origin.at("proj.weight") == "initialised");
  BOOST_TEST(torch::equal(sd["fc.bias"], torch::zeros({10})));
  const double std = sd["proj.weight"].std().item<double>();
  BOOST_TEST(std::abs(std - std::sqrt(2.0 / (512 + 512))) < 0.003);  // xavier_normal, gain 1

  // A rule that only finds loaded tensors is an error, not a silent no-op.
  BOOST_TEST(contains(error_of("model:\n  backbone: resnet18\n  weights: " + oracle()("resnet18.pth") + "\n" + rules),
                      "model.init.0: selects nothing new: all 20 Conv2d tensors were loaded from the weights (only: new); add only: all"));
  // seed 000's init_weights from scratch: every Conv2d and Linear is new
  auto scratch = build("seed: 3\nmodel:\n  backbone: resnet18\n" + rules);
  const auto s2 = graft::state_dict(*scratch.module.ptr());
  const double conv_std = s2["layer1.0.conv1.weight"].std().item<double>();
  BOOST_TEST(std::abs(conv_std - std::sqrt(2.0 / (64 * 9))) < 0.005);  // kaiming fan_out, relu
  BOOST_TEST(contains(error_of("model:\n  backbone: resnet18\n  init:\n    - {modules: Conv3d, weight: zeros}\n"),
                      "selects nothing: the model has no Conv3d module"));
  BOOST_TEST(contains(error_of("model:\n  backbone: resnet18\n  init:\n    - {modules: Linear, wieght: zeros}\n"),
                      "no selected Linear module has a parameter 'wieght'"));
  BOOST_TEST(contains(error_of("model:\n  backbone: resnet18\n  init:\n    - {names: 'fc', weight: {name: normal, std: -1}}\n"),
                      "std"));
  // the same seed gives the same model
  auto again = build("seed: 3\nmodel:\n  backbone: resnet18\n" + rules);
  BOOST_TEST(torch::equal(graft::state_dict(*again.module.ptr())["fc.weight"], s2["fc.weight"]));
}
