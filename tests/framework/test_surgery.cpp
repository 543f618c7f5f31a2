// Surgery, head reset and input-channel adaptation, checked against the same edits done
// by hand on torchvision models in Python (the seeds' snippets).
#define BOOST_TEST_MODULE surgery
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "graft/host/build.h"
#include "graft/host/summary.h"
#include "graft/host/surgery.h"
#include "graft/host/watch.h"
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
  BOOST_TEST(contains(error_of("model:\n  backbone: resnet18\n  surgery:\n    - {remove: layer1.0.bn1.weight}\n"),
                      "no module 'layer1.0.bn1.weight' in the model; 'layer1.0.bn1' has no children"));
  BOOST_TEST(contains(error_of("model:\n  backbone: resnet18\n  surgery:\n    - {remove: fc, replace: fc}\n"),
                      "one operation per step"));
  BOOST_TEST(contains(error_of("model:\n  backbone: resnet18\n  surgery:\n    - {append_to: fc, name: x, with: relu}\n"),
                      "cannot append to 'fc': it is a Linear, not a container (Stages, branches)"));
  BOOST_TEST(contains(error_of("model:\n  backbone: resnet18\n  surgery:\n    - {append_to: layer1.0, name: x, with: relu}\n"),
                      "cannot append 'x' to a BasicBlock: its forward runs its children in its own code"));
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

namespace {
std::vector<std::string> child_names(const torch::nn::Module& m) {
  std::vector<std::string> names;
  for (const auto& c : m.named_children()) names.push_back(c.key());
  return names;
}

const graft::SummaryRow& row_of(const std::vector<graft::SummaryRow>& rows, const std::string& path) {
  for (const auto& r : rows)
    if (r.path == path) return r;
  BOOST_FAIL("no summary row " + path);
  throw;
}

// Seed 000's MultiPathNet (padded) as the built-in `branches` backbone writes it.
const std::string multipath =
    "model:\n  input_shape: [3, 32, 32]\n  backbone:\n    name: branches\n    paths:\n"
    "      path_a: [{name: conv2d, out_channels: 64, kernel_size: 3, padding: 1}, {name: max_pool2d, kernel_size: 2}]\n"
    "      path_b: [{name: conv2d, out_channels: 64, kernel_size: 5, padding: 2}, {name: avg_pool2d, kernel_size: 2}]\n"
    "    then: {fusion: {name: conv2d, out_channels: 256, kernel_size: 1}}\n";
}  // namespace

BOOST_AUTO_TEST_CASE(seed000_multipath_net_from_a_recipe_is_pythons) {
  // Python's MultiPathNet weights load strictly (the same keys and shapes) and give its output
  auto built = build(multipath + "  weights: " + oracle()("multipath.pth") + "\n");
  BOOST_TEST(layout(*built.module.ptr()) == oracle().layouts["seed000_multipath"]);
  BOOST_TEST(child_names(*built.module.ptr()) == (std::vector<std::string>{"path_a", "path_b", "fusion"}));
  const auto io = graft::read_torch_file(oracle()("multipath_io.pth")).toGenericDict();
  built.module.ptr()->eval();
  torch::NoGradGuard no_grad;
  const auto y = built.module.forward(io.at("x").toTensor());
  BOOST_TEST(torch::allclose(y, io.at("y").toTensor(), 1e-5, 1e-5));
  // a deep copy (DataParallel's replicas): the same outputs, tensors of its own
  auto copy = built.module.clone();
  BOOST_TEST(torch::equal(copy.forward(io.at("x").toTensor()), y));
  BOOST_TEST(graft::state_dict(*copy.ptr())["fusion.weight"].data_ptr() !=
             graft::state_dict(*built.module.ptr())["fusion.weight"].data_ptr());

  // the seed's own convs (no padding) give 15x15 and 14x14 maps: refused where merge is written
  const auto unpadded = std::regex_replace(multipath, std::regex(", padding: [12]"), "");
  BOOST_TEST(contains(error_of(unpadded + "    merge: concat\n"),
                      "r.yaml:9:12: model.backbone.merge: cannot concat 'path_a' [2, 64, 15, 15] and 'path_b' "
                      "[2, 64, 14, 14] (all sizes but the channels must agree)"));
  BOOST_TEST(contains(error_of("model:\n  backbone: {name: branches, paths: {a: relu}}\n"),
                      "r.yaml:2:13: model.backbone: needs the shape of its input to size its modules: give model.input_shape"));
  BOOST_TEST(contains(error_of("model:\n  input_shape: [3, 8, 8]\n  backbone: {name: branches, paths: {a: relu, b: {name: linaer}}}\n"),
                      "unknown module 'linaer' (did you mean 'linear'?)"));
}

BOOST_AUTO_TEST_CASE(branches_take_surgery_next_to_a_branch_and_after_the_merge) {
  auto built = build(multipath +
                     "  surgery:\n"
                     "    - {insert_after: path_b, name: path_c, with: {name: stages, layers: [{name: conv2d, out_channels: 32, kernel_size: 1}, {name: max_pool2d, kernel_size: 2}]}}\n"
                     "    - {replace: fusion, with: {name: conv2d, out_channels: 16, kernel_size: 1}}\n"
                     "    - {insert_after: fusion, name: pool, with: adaptive_avg_pool2d}\n"
                     "    - {append_to: '', name: flatten, with: flatten}\n"
                     "    - {insert_before: pool, name: bn, with: batchnorm2d}\n"
                     "    - {append_to: '', name: fc, with: {name: linear, out_features: 3}}\n"
                     "    - {remove: path_a}\n");
  auto& root = *built.module.ptr();
  BOOST_TEST(child_names(root) == (std::vector<std::string>{"path_b", "path_c", "fusion", "bn", "pool", "flatten", "fc"}));
  const auto sd = graft::state_dict(root);
  BOOST_TEST(sd["path_c.0.weight"].sizes() == torch::IntArrayRef({32, 3, 1, 1}));  // a new branch sees the input
  BOOST_TEST(sd["bn.weight"].size(0) == 16);
  BOOST_TEST(sd["fc.weight"].sizes() == torch::IntArrayRef({3, 16}));
  // fusion was sized for 160 channels before path_a went: 96 come now, and the forward fails
  root.eval();
  BOOST_CHECK_THROW(built.module.forward(torch::randn({1, 3, 32, 32})), std::exception);
  graft::replace_at(root, "fusion", torch::nn::AnyModule(torch::nn::Conv2d(torch::nn::Conv2dOptions(96, 16, 1))));
  BOOST_TEST(built.module.forward(torch::randn({2, 3, 32, 32})).sizes() == torch::IntArrayRef({2, 3}));
  BOOST_TEST(contains(built.changes[0], "surgery: stages 'path_c' inserted after path_b"));
}

BOOST_AUTO_TEST_CASE(stages_size_each_module_from_what_flows_in_and_branches_merge_by_mean) {
  auto net = build("model:\n  input_shape: [1, 8, 8]\n  backbone:\n    name: stages\n    layers:\n"
                   "      conv: {name: conv2d, out_channels: 4}\n      flat: flatten\n      fc: {name: linear, out_features: 2}\n");
  BOOST_TEST(child_names(*net.module.ptr()) == (std::vector<std::string>{"conv", "flat", "fc"}));
  BOOST_TEST(graft::state_dict(*net.module.ptr())["fc.weight"].sizes() == torch::IntArrayRef({2, 4 * 6 * 6}));
  auto mean = build("model:\n  input_shape: [3]\n  backbone: {name: branches, merge: mean, paths: {a: relu, b: [identity, sigmoid]}}\n");
  const auto x = torch::randn({5, 3});
  BOOST_TEST(torch::allclose(mean.module.forward(x), (torch::relu(x) + torch::sigmoid(x)) / 2));
  BOOST_TEST(contains(error_of("model:\n  input_shape: [3]\n  backbone: {name: stages, layers: []}\n"), "layers"));
}

namespace {
namespace nn = torch::nn;
// Seed 000's MultiPathNet as a C++ plugin author writes it: a graft::Block root whose
// forward runs two Stages paths, concatenates them and fuses.
struct MultiPathImpl : graft::Block<MultiPathImpl> {
  MultiPathImpl() {
    graft::Stages a, b;
    a->append("0", nn::AnyModule(nn::Conv2d(nn::Conv2dOptions(3, 8, 3).padding(1))));
    a->append("1", nn::AnyModule(nn::MaxPool2d(2)));
    b->append("0", nn::AnyModule(nn::Conv2d(nn::Conv2dOptions(3, 8, 5).padding(2))));
    b->append("1", nn::AnyModule(nn::AvgPool2d(2)));
    add("path_a", a);
    add("path_b", b);
    add("fuse", nn::Conv2d(16, 32, 1));
  }
  torch::Tensor forward(torch::Tensor x) { return call("fuse", torch::cat({call("path_a", x), call("path_b", x)}, 1)); }
};
TORCH_MODULE(MultiPath);
}  // namespace

BOOST_AUTO_TEST_CASE(a_block_rooted_model_gets_the_summary_and_surgery_of_a_stages_tree) {
  torch::manual_seed(0);
  nn::AnyModule model(MultiPath{});
  auto& root = *model.ptr();
  std::map<std::string, std::string> origin;
  for (const auto& p : root.named_parameters()) origin[p.key()] = "new";

  // per-layer paths without a leading dot, output shapes and origins, as for Stages
  auto rows = graft::summarize(model, {3, 16, 16}, origin);
  std::vector<std::string> paths;
  for (const auto& r : rows) paths.push_back(r.path);
  BOOST_TEST(paths == (std::vector<std::string>{"path_a", "path_a.0", "path_a.1", "path_b", "path_b.0", "path_b.1", "fuse"}));
  BOOST_TEST(row_of(rows, "path_a").depth == 0);
  BOOST_TEST(row_of(rows, "path_a.0").output_shape == (std::vector<std::int64_t>{1, 8, 16, 16}));
  BOOST_TEST(row_of(rows, "path_b").output_shape == (std::vector<std::int64_t>{1, 8, 8, 8}));
  BOOST_TEST(row_of(rows, "fuse").output_shape == (std::vector<std::int64_t>{1, 32, 8, 8}));
  BOOST_TEST(row_of(rows, "fuse").origin == "new");
  BOOST_TEST(row_of(rows, "path_a").params == 8 * 3 * 9 + 8);

  // what flows into a Block's child, for surgery's inferred sizes
  const auto example = torch::zeros({2, 3, 16, 16});
  BOOST_TEST(*graft::shape_at(model, "fuse", example, false) == (std::vector<std::int64_t>{2, 16, 8, 8}));
  BOOST_TEST(*graft::shape_at(model, "path_b.1", example, true) == (std::vector<std::int64_t>{2, 8, 8, 8}));

  root.eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({2, 3, 16, 16});
  const auto fuse = root.named_children()["fuse"];
  const auto before = model.forward(x);
  // insert_after fuse: on what fuse returns, registered next to it
  graft::insert_next_to(root, "fuse", true, "act", nn::AnyModule(nn::ReLU()));
  graft::insert_next_to(root, "path_a", false, "scale", nn::AnyModule(nn::Conv2d(nn::Conv2dOptions(3, 3, 1))));
  BOOST_TEST(child_names(root) == (std::vector<std::string>{"scale", "path_a", "path_b", "fuse", "act"}));
  BOOST_TEST(!torch::allclose(model.forward(x), torch::relu(before)));  // scale runs before path_a
  graft::remove_at(root, "scale");
  BOOST_TEST(torch::allclose(model.forward(x), torch::relu(before)));
  // remove an own child: it passes its input through (Python's block.fuse = nn.Identity())
  graft::remove_at(root, "act");
  graft::remove_at(root, "fuse");
  BOOST_TEST(child_names(root) == (std::vector<std::string>{"path_a", "path_b"}));
  BOOST_TEST(model.forward(x).size(1) == 16);
  BOOST_TEST(root.named_parameters().size() == 4u);
  // replace brings it back in its place; a clone keeps the edits and is deep
  BOOST_TEST(contains(graft::test::error_of([&] { graft::replace_at(root, "fuse", nn::AnyModule(nn::Identity())); }).what(),
                      "no module 'fuse' in the model"));
  root.as<MultiPathImpl>()->replace_child("fuse", nn::AnyModule(nn::Conv2d(16, 4, 1)));
  graft::insert_next_to(root, "fuse", true, "act", nn::AnyModule(nn::ReLU()));
  BOOST_TEST(child_names(root) == (std::vector<std::string>{"path_a", "path_b", "fuse", "act"}));
  const auto y = model.forward(x);
  BOOST_TEST(y.size(1) == 4);
  BOOST_TEST(y.min().item<float>() >= 0);
  auto copy = std::dynamic_pointer_cast<MultiPathImpl>(root.clone());
  BOOST_TEST(torch::equal(copy->forward(x), y));
  BOOST_TEST(copy->named_parameters()["fuse.weight"].data_ptr() != root.named_parameters()["fuse.weight"].data_ptr());
  // the summary sees the inserted child
  rows = graft::summarize(model, {3, 16, 16}, origin);
  BOOST_TEST(row_of(rows, "act").output_shape == (std::vector<std::int64_t>{1, 4, 8, 8}));
  BOOST_TEST(contains(graft::test::error_of([&] { graft::append_to(root, "", "x", nn::AnyModule(nn::ReLU())); }).what(),
                      "cannot append 'x' to a MultiPath"));
}
