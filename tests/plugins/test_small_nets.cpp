#define BOOST_TEST_MODULE small_nets
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "graft/model.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "support/plugins.h"
#include "support/run.h"

using graft::Kind;
using graft::test::registry;

namespace {
torch::nn::AnyModule make(const std::string& spec) {
  return registry().create<Kind::backbone>(graft::test::yaml(spec));
}
nlohmann::json state_dict_layout(torch::nn::AnyModule& m) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : m.ptr()->named_parameters()) out.push_back({p.key(), p.value().sizes().vec()});
  for (const auto& b : m.ptr()->named_buffers()) out.push_back({b.key(), b.value().sizes().vec()});
  return out;
}
// Python orders a state dict module by module (params then buffers of each); compare as sets.
std::set<std::string> as_set(const nlohmann::json& layout) {
  std::set<std::string> s;
  for (const auto& e : layout) s.insert(e.dump());
  return s;
}
}  // namespace

BOOST_AUTO_TEST_CASE(keys_and_shapes_match_the_python_definitions) {
  const auto r = graft::test::run(std::string(GRAFT_PYTHON) + " " + GRAFT_SOURCE_DIR +
                                  "/tests/plugins/small_nets_oracle.py");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  const auto python = nlohmann::json::parse(r.out);
  auto lenet = make("{name: lenet, num_classes: 10}");
  auto cnn = make("{name: simple_cnn}");
  auto mlp = make("{name: mlp}");
  for (auto& [name, net] : std::vector<std::pair<std::string, torch::nn::AnyModule*>>{
           {"lenet", &lenet}, {"simple_cnn", &cnn}, {"mlp", &mlp}}) {
    const auto ours = state_dict_layout(*net);
    BOOST_TEST_CONTEXT(name) {
      BOOST_TEST(ours.size() == python[name].size());
      BOOST_TEST((as_set(ours) == as_set(python[name])));
    }
  }
}

BOOST_AUTO_TEST_CASE(forward_shapes_follow_the_options) {
  auto lenet = make("{name: lenet, in_channels: 1, input_size: 28, num_classes: 5}");
  BOOST_TEST(lenet.forward(torch::zeros({2, 1, 28, 28})).sizes() == torch::IntArrayRef({2, 5}));
  auto cnn = make("{name: simple_cnn, in_channels: 3, input_size: 32, width: 8}");
  BOOST_TEST(cnn.forward(torch::zeros({2, 3, 32, 32})).sizes() == torch::IntArrayRef({2, 10}));
  auto mlp = make("{name: mlp, hidden: [16], dropout: 0.2}");
  BOOST_TEST(mlp.forward(torch::zeros({4, 1, 28, 28})).sizes() == torch::IntArrayRef({4, 10}));
}

BOOST_AUTO_TEST_CASE(bad_options_fail_at_their_key) {
  try {
    make("name: lenet\ninput_size: 8\n");
    BOOST_FAIL("expected an error");
  } catch (const graft::Error& e) {
    BOOST_TEST(std::string(e.what()) == "test.yaml:2:13: input_size: is too small for LeNet's two 5x5 convolutions");
    BOOST_TEST(e.exit_code() == 2);
  }
  BOOST_CHECK_THROW(make("{name: mlp, hidden: [16, -1]}"), graft::Error);
  BOOST_CHECK_THROW(make("{name: simple_cnn, num_classes: 0}"), graft::Error);
}
