// graft's torchvision backbones against the real torchvision 0.14 (torchvision_oracle.py):
// the same state-dict keys, shapes and order, and, with the same weights loaded, the same
// eval-mode outputs.
#define BOOST_TEST_MODULE torchvision_backbones
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "graft/model.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "graft/host/serialize.h"
#include "support/plugins.h"
#include "support/run.h"

namespace fs = std::filesystem;
using nlohmann::json;
using graft::test::registry;

namespace {

struct Case {
  std::string id;
  json options;                // the backbone spec, as a recipe writes it (JSON is YAML)
  std::vector<int64_t> input;  // empty: layout only
  bool ordered = true;         // false: compare keys as a set (see googlenet.cpp)
};

const std::vector<int64_t> kRgb64{2, 3, 64, 64};

// Every backbone's layout is checked, and every backbone's outputs but six of the eight
// VGGs': a VGG's layout (conv shapes, pool positions) determines it, and vgg11 and vgg19_bn
// cover the code with and without batch norm. The VGGs' 500 MB state dicts are most of the
// suite's time.
const std::vector<Case>& cases() {
  static const std::vector<Case> all = [] {
    std::vector<Case> c;
    auto add = [&c](std::string id, json options, std::vector<int64_t> input = {}, bool ordered = true) {
      if (!options.contains("name")) options["name"] = id;
      c.push_back({std::move(id), std::move(options), std::move(input), ordered});
    };
    for (const char* n : {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
                          "wide_resnet50_2", "alexnet", "densenet121", "densenet161", "densenet169", "densenet201",
                          "squeezenet1_0", "squeezenet1_1", "mobilenet_v2", "googlenet"})
      add(n, json::object(), kRgb64);
    for (const char* n : {"vgg11", "vgg19_bn"}) add(n, json::object(), kRgb64);
    for (const char* n : {"vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn"}) add(n, json::object());
    add("inception_v3", json::object(), {1, 3, 112, 112});

    // Options.
    add("resnet18_gray_10", {{"name", "resnet18"}, {"in_channels", 1}, {"num_classes", 10}}, {2, 1, 64, 64});
    add("resnet50_10", {{"name", "resnet50"}, {"num_classes", 10}});
    add("vgg11_bn_gray_10", {{"name", "vgg11_bn"}, {"in_channels", 1}, {"num_classes", 10}});
    add("alexnet_gray_10", {{"name", "alexnet"}, {"in_channels", 1}, {"num_classes", 10}});
    add("densenet121_gray_dropout", {{"name", "densenet121"}, {"in_channels", 1}, {"dropout", 0.2}},
        {2, 1, 64, 64});
    add("squeezenet1_1_gray_10", {{"name", "squeezenet1_1"}, {"in_channels", 1}, {"num_classes", 10}},
        {2, 1, 64, 64});
    add("mobilenet_v2_10", {{"name", "mobilenet_v2"}, {"num_classes", 10}, {"dropout", 0.3}}, kRgb64);
    add("googlenet_gray", {{"name", "googlenet"}, {"in_channels", 1}});
    add("googlenet_transform", {{"name", "googlenet"}, {"transform_input", true}}, kRgb64);
    add("googlenet_aux_10", {{"name", "googlenet"}, {"aux_logits", true}, {"num_classes", 10}}, kRgb64,
        /*ordered=*/false);
    add("inception_v3_aux_transform",
        {{"name", "inception_v3"}, {"aux_logits", true}, {"transform_input", true}, {"num_classes", 10}},
        {1, 3, 112, 112});
    add("inception_v3_gray", {{"name", "inception_v3"}, {"in_channels", 1}});
    return c;
  }();
  return all;
}

torch::nn::AnyModule make(const json& options) {
  return registry().create<graft::Kind::backbone>(graft::test::yaml(options.dump()));
}

// The models the layout check built for cases with an input, handed to the output check so
// that no model is built twice (building the large ones is most of the C++ side's time).
std::map<std::string, torch::nn::AnyModule>& built() {
  static std::map<std::string, torch::nn::AnyModule> models;
  return models;
}

torch::nn::AnyModule take_or_make(const Case& c) {
  const auto at = built().find(c.id);
  if (at == built().end()) return make(c.options);
  auto model = std::move(at->second);
  built().erase(at);
  return model;
}

// One oracle run for the whole suite: its files live in a temp dir removed at exit.
struct Oracle {
  fs::path dir;
  json layouts;
  std::string error;
  Oracle() : dir(graft::test::temp_dir("torchvision")) {
    json spec = json::array();
    for (const auto& c : cases())
      spec.push_back({{"id", c.id}, {"options", c.options}, {"input", c.input.empty() ? json() : json(c.input)}});
    std::ofstream(dir / "cases.json") << spec.dump();
    const auto r = graft::test::run(std::string(GRAFT_PYTHON) + " " + GRAFT_SOURCE_DIR +
                                    "/tests/plugins/torchvision_oracle.py " + dir.string());
    if (r.code != 0) {
      error = "torchvision_oracle.py failed (" + std::to_string(r.code) + "): " + r.err;
      return;
    }
    std::ifstream in(dir / "layouts.json");
    layouts = json::parse(in);
  }
  ~Oracle() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

const Oracle& oracle() {
  static Oracle o;
  return o;
}

// The state dict's layout in Python's order: module by module (pre-order), each module's
// own parameters, then its own buffers.
json layout(const torch::nn::Module& model) {
  json out = json::array();
  for (const auto& item : model.named_modules()) {
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false))
      out.push_back({prefix + p.key(), p.value().sizes().vec()});
    for (const auto& b : item.value()->named_buffers(/*recurse=*/false))
      out.push_back({prefix + b.key(), b.value().sizes().vec()});
  }
  return out;
}

std::multiset<std::string> as_set(const json& layout) {
  std::multiset<std::string> s;
  for (const auto& e : layout) s.insert(e.dump());
  return s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(state_dict_layouts_match_torchvision) {
  BOOST_REQUIRE_MESSAGE(oracle().error.empty(), oracle().error);
  for (const auto& c : cases()) {
    BOOST_TEST_CONTEXT(c.id << " " << c.options.dump()) {
      BOOST_REQUIRE(oracle().layouts.contains(c.id));
      const json& python = oracle().layouts.at(c.id);
      auto model = make(c.options);
      const json ours = layout(*model.ptr());
      if (!c.input.empty()) built().emplace(c.id, std::move(model));
      BOOST_TEST(ours.size() == python.size());
      if (c.ordered) {
        BOOST_TEST((ours == python));
        if (ours != python) {
          for (std::size_t i = 0; i < std::min(ours.size(), python.size()); ++i)
            if (ours[i] != python[i]) {
              BOOST_TEST_MESSAGE("first difference at " << i << ": " << ours[i] << " vs " << python[i]);
              break;
            }
        }
      } else {
        BOOST_TEST((as_set(ours) == as_set(python)));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(eval_outputs_match_torchvision_with_the_same_weights) {
  BOOST_REQUIRE_MESSAGE(oracle().error.empty(), oracle().error);
  torch::NoGradGuard no_grad;
  // One thread, as the oracle: with two, torch's own results differ by 1e-4 (relative) after
  // 150 layers, depending on how its sums were split.
  const int threads = torch::get_num_threads();
  torch::set_num_threads(1);
  for (const auto& c : cases()) {
    if (c.input.empty()) continue;
    BOOST_TEST_CONTEXT(c.id << " " << c.options.dump()) {
      const auto weights = graft::load_state_dict((oracle().dir / (c.id + ".pth")).string());
      // the same state dict in torch's legacy (pre-1.6) format reads identically
      const auto legacy = graft::load_state_dict((oracle().dir / (c.id + ".legacy.pth")).string());
      BOOST_TEST_REQUIRE(legacy.keys() == weights.keys());
      for (const auto& item : weights) BOOST_TEST_REQUIRE(torch::equal(legacy[item.key()], item.value()), item.key());
      const auto io = graft::read_torch_file((oracle().dir / (c.id + ".io.pth")).string()).toGenericDict();
      const auto input = io.at("input").toTensor();
      const auto expected = io.at("output").toTensor();

      auto model = take_or_make(c);
      auto params = model.ptr()->named_parameters();
      auto buffers = model.ptr()->named_buffers();
      BOOST_TEST(weights.size() == params.size() + buffers.size());
      for (const auto& item : weights) {
        torch::Tensor* target = params.find(item.key());
        if (!target) target = buffers.find(item.key());
        BOOST_TEST_REQUIRE(target, "torchvision's key " << item.key() << " is not in the model");
        BOOST_TEST_REQUIRE(target->sizes() == item.value().sizes(), item.key());
        target->copy_(item.value());
      }
      model.ptr()->eval();
      const auto output = model.forward(input);
      BOOST_TEST_REQUIRE(output.sizes() == expected.sizes());
      const double diff = (output - expected).abs().max().item<double>();
      const double magnitude = expected.abs().max().item<double>();
      BOOST_TEST_MESSAGE(c.id << ": max abs diff " << diff << " (max |output| " << magnitude << ")");
      BOOST_TEST(diff <= 1e-4 * std::max(1.0, magnitude));
    }
  }
  torch::set_num_threads(threads);
}

BOOST_AUTO_TEST_CASE(clones_are_deep_and_compute_the_same) {
  torch::NoGradGuard no_grad;
  for (const char* name : {"resnet18", "densenet121", "squeezenet1_1", "mobilenet_v2", "googlenet"}) {
    BOOST_TEST_CONTEXT(name) {
      auto model = make(json{{"name", name}});
      model.ptr()->eval();
      auto copy = model.clone();
      const auto x = torch::randn({1, 3, 64, 64});
      BOOST_TEST(torch::equal(model.forward(x), copy.forward(x)));
      auto original = model.ptr()->parameters().front();
      auto cloned = copy.ptr()->parameters().front();
      BOOST_TEST(original.data_ptr() != cloned.data_ptr());
      const auto before = cloned.clone();
      original.add_(1.0);
      BOOST_TEST(torch::equal(cloned, before));
    }
  }
}

BOOST_AUTO_TEST_CASE(aux_heads_compute_their_logits_only_in_training) {
  auto googlenet = make({{"name", "googlenet"}, {"aux_logits", true}, {"num_classes", 7}, {"dropout_aux", 0.0}});
  googlenet.ptr()->train();
  BOOST_TEST(googlenet.forward(torch::randn({2, 3, 64, 64})).sizes() == torch::IntArrayRef({2, 7}));
  auto inception = make({{"name", "inception_v3"}, {"aux_logits", true}});
  inception.ptr()->eval();
  BOOST_TEST(inception.forward(torch::randn({1, 3, 112, 112})).sizes() == torch::IntArrayRef({1, 1000}));
}

BOOST_AUTO_TEST_CASE(bad_options_fail_at_their_key) {
  auto fails_with = [](const std::string& spec, const std::string& message) {
    try {
      registry().create<graft::Kind::backbone>(graft::test::yaml(spec));
      BOOST_ERROR("expected an error for " << spec);
    } catch (const graft::Error& e) {
      BOOST_TEST(graft::test::contains(e.what(), message), e.what());
      BOOST_TEST(e.exit_code() == 2);
    }
  };
  fails_with("{name: resnet18, num_classes: 0}", "num_classes: must be >= 1, got 0");
  fails_with("{name: vgg11, dropout: 1.5}", "dropout: must be in [0, 1], got 1.5");
  fails_with("{name: densenet121, in_channels: -1}", "in_channels: must be >= 1, got -1");
  fails_with("{name: googlenet, in_channels: 1, transform_input: true}", "transform_input: needs 3 input channels");
  fails_with("{name: inception_v3, aux_logit: true}", "did you mean 'aux_logits'");
}

BOOST_AUTO_TEST_CASE(blocks_print_as_torchvision_names_them) {
  const auto resnet = graft::describe_tree(*make(json{{"name", "resnet18"}}).ptr());
  BOOST_TEST(graft::test::contains(resnet, "(0): BasicBlock(\n"), resnet);
  const auto densenet = graft::describe_tree(*make(json{{"name", "densenet121"}}).ptr());
  BOOST_TEST(graft::test::contains(densenet, "(denseblock1): _DenseBlock(\n"));
  BOOST_TEST(graft::test::contains(densenet, "(denselayer1): _DenseLayer(\n"));
}
