// graft -> Python: graft builds a torchvision backbone, writes its weights, input and output
// (and train-mode gradients); Python loads them strictly into torchvision and reproduces them.
#define BOOST_TEST_MODULE backbone_roundtrip
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>

#include "graft/model.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "graft/host/serialize.h"
#include "support/plugins.h"
#include "support/run.h"

namespace fs = std::filesystem;

using graft::test::registry;

namespace {
c10::impl::GenericDict tensors(const graft::StateDict& sd) {
  c10::impl::GenericDict d(c10::StringType::get(), c10::TensorType::get());
  for (const auto& item : sd) d.insert(item.key(), item.value().detach());
  return d;
}
}  // namespace

BOOST_AUTO_TEST_CASE(python_reproduces_graft_outputs_and_gradients) {
  torch::set_num_threads(1);
  const auto dir = graft::test::temp_dir("roundtrip");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"resnet18", "eval"},     {"vgg11_bn", "eval"},  {"densenet121", "eval"}, {"mobilenet_v2", "eval"},
      {"squeezenet1_0", "eval"}, {"googlenet", "eval"}, {"resnet18", "train"},   {"vgg11_bn", "train"}};
  for (const auto& [name, mode] : cases) {
    torch::manual_seed(7);
    const std::string spec = name == "vgg11_bn" && mode == "train" ? "{name: vgg11_bn, dropout: 0.0}" : name;
    auto model = registry().create<graft::Kind::backbone>(graft::test::yaml(spec));
    {
      // BatchNorm statistics away from their defaults, so eval mode really uses them
      torch::NoGradGuard no_grad;
      for (auto& b : model.ptr()->named_buffers())
        if (b.key().find("running_") != std::string::npos) b.value().uniform_(0.5, 1.5);
    }
    const auto x = torch::randn({2, 3, 64, 64});
    c10::impl::GenericDict file(c10::StringType::get(), c10::AnyType::get());
    if (mode == "eval") {
      model.ptr()->eval();
      torch::NoGradGuard no_grad;
      file.insert("output", model.forward(x));
    } else {
      model.ptr()->train();
      const auto y = model.forward(x);
      y.pow(2).mean().backward();
      c10::impl::GenericDict grads(c10::StringType::get(), c10::TensorType::get());
      for (const auto& p : model.ptr()->named_parameters()) grads.insert(p.key(), p.value().grad());
      file.insert("output", y.detach());
      file.insert("grads", grads);
    }
    // train mode updated the running statistics: the state dict is taken after, as Python's would be
    file.insert("state_dict", tensors(graft::state_dict(*model.ptr())));
    file.insert("input", x);
    graft::write_torch_file(file, (dir / (name + "@" + mode + ".pth")).string());
  }
  const auto r = graft::test::run(std::string(GRAFT_PYTHON) + " " + GRAFT_SOURCE_DIR +
                                  "/tests/plugins/roundtrip_oracle.py " + dir.string());
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  const auto diffs = nlohmann::json::parse(r.out);
  BOOST_TEST(diffs.size() == cases.size());
  for (const auto& item : diffs.items()) {
    BOOST_TEST_MESSAGE(item.key() << ": max relative difference " << item.value().get<double>());
    BOOST_TEST(item.value().get<double>() <= 1e-4, item.key() << " differs by " << item.value().get<double>());
  }
  fs::remove_all(dir);
}
