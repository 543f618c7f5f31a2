// Freezing policies and optimizer parameter groups, from recipes.
#define BOOST_TEST_MODULE training_plan
#include <boost/test/unit_test.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <type_traits>

#include "graft/host/build.h"
#include "graft/host/check.h"
#include "graft/host/optimizer_plan.h"
#include "support/plugins.h"
#include "support/run.h"

namespace fs = std::filesystem;
using graft::test::contains;
using graft::test::registry;

namespace {

struct Setup {
  graft::Recipe recipe;
  graft::BuiltModel built;
  std::vector<std::shared_ptr<graft::Freezer>> freezers;
  explicit Setup(const std::string& yaml) {
    const auto dir = graft::test::temp_dir("plan");
    std::ofstream(dir / "r.yaml") << yaml;
    recipe = graft::load_recipe((dir / "r.yaml").string());
    fs::remove_all(dir);
    graft::check_recipe(recipe, registry());  // as graft train and graft check do first
    built = graft::build_model(recipe, registry());
    freezers = graft::make_freezers(recipe, registry());
  }
  torch::nn::Module& model() { return *built.module.ptr(); }
  graft::FreezeState at(std::int64_t epoch) {
    auto s = graft::freeze_state(freezers, graft::model_info(model()), epoch, 0);
    graft::apply_freeze(model(), s);
    return s;
  }
};

// The key LibTorch's optimizers file a parameter's state under: the TensorImpl's address,
// as a string in LibTorch 1.x, as the pointer in 2.x.
template <class O> auto libtorch_state_key(O& optimizer, const torch::Tensor& p) {
  using Key = typename std::remove_reference_t<decltype(optimizer.state())>::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

std::string error_of(const std::function<void()>& f) { return graft::test::error_of(f).what(); }

}  // namespace

BOOST_AUTO_TEST_CASE(frozen_weights_stay_bit_identical_and_get_no_optimizer_state) {
  // seed 000: everything but fc frozen; seed 004: biases at 2x lr, no weight decay
  Setup s("model:\n  backbone: {name: resnet18, num_classes: 10}\n  freeze:\n    - {name: freeze_all_except, patterns: ['fc.*']}\n"
          "optimizer:\n  name: sgd\n  lr: 0.1\n  momentum: 0.9\n  weight_decay: 0.001\n  groups:\n    - {bias: true, lr_mult: 2, weight_decay: 0}\n");
  const auto state = s.at(0);
  BOOST_TEST(state.frozen.size() == 60u);
  const auto plan = graft::plan_optimizer(s.recipe, registry(), s.model(), state);
  auto optimizer = graft::make_optimizer(s.recipe, registry(), plan);
  BOOST_REQUIRE(optimizer->group_count() == 2u);
  const auto g0 = optimizer->group_options(0), g1 = optimizer->group_options(1);
  BOOST_TEST(g0.get<double>("lr") == 0.1);
  BOOST_TEST(optimizer->lr(0) == 0.1);
  BOOST_TEST(g0.get<double>("weight_decay") == 0.001);
  BOOST_TEST(g0.get<double>("momentum") == 0.9);
  BOOST_TEST(*optimizer->momentum(0) == 0.9);
  BOOST_TEST(g1.get<double>("lr") == 0.2);
  BOOST_TEST(g1.get<double>("weight_decay") == 0.0);
  BOOST_TEST(plan.groups[1].names == std::vector<std::string>{"fc.bias"});

  std::map<std::string, torch::Tensor> before;
  for (const auto& p : s.model().named_parameters()) before[p.key()] = p.value().clone();
  s.model().train();
  s.at(0);
  for (int step = 0; step < 3; ++step) {
    optimizer->zero_grad();
    const auto loss = s.built.module.forward(torch::randn({4, 3, 32, 32})).logsumexp(1).mean();
    loss.backward();
    optimizer->step();
  }
  for (const auto& p : s.model().named_parameters()) {
    const bool trainable = p.key().rfind("fc.", 0) == 0;
    BOOST_TEST(torch::equal(p.value(), before[p.key()]) == !trainable, p.key());
    BOOST_TEST(!p.value().grad().defined() == !trainable, p.key());  // frozen: no gradient at all
  }
  std::size_t with_state = 0;  // momentum buffers for fc.weight and fc.bias only
  for (const auto& p : s.model().parameters()) with_state += optimizer->param_state(p).empty() ? 0 : 1;
  BOOST_TEST(with_state == 2u);
  BOOST_TEST(optimizer->param_state(s.model().named_parameters()["fc.bias"]).has("momentum_buffer"));
}

BOOST_AUTO_TEST_CASE(first_matching_rule_wins_and_norm_shortcut) {
  Setup s("model:\n  backbone: resnet18\noptimizer:\n  name: adamw\n  lr: 0.001\n  weight_decay: 0.05\n  groups:\n"
          "    - {params: 'fc.*', lr: 0.01}\n    - {norm: true, weight_decay: 0}\n    - {bias: true, weight_decay: 0}\n");
  const auto plan = graft::plan_optimizer(s.recipe, registry(), s.model(), s.at(0));
  std::map<std::string, const graft::ParamGroup*> by;
  for (const auto& g : plan.groups) by[g.name] = &g;
  BOOST_REQUIRE(by.size() == 3u);  // default (conv weights), fc.*, norm; no bias left (convs have none)
  BOOST_TEST(by["fc.*"]->names == (std::vector<std::string>{"fc.weight", "fc.bias"}));
  BOOST_TEST(by["norm"]->names.size() == 40u);
  BOOST_TEST(by["default"]->names.size() == 20u);
  auto optimizer = graft::make_optimizer(s.recipe, registry(), plan);
  for (std::size_t k = 0; k < plan.groups.size(); ++k) {
    const auto got = optimizer->group_options(k);
    BOOST_TEST(got.get<double>("lr") == plan.groups[k].lr);
    BOOST_TEST(got.get<double>("weight_decay") == plan.groups[k].weight_decay);
    BOOST_TEST(got.get<std::vector<double>>("betas") == (std::vector<double>{0.9, 0.999}));
    BOOST_TEST(optimizer->momentum(k).value() == 0.9);  // AdamW's beta1: what one_cycle varies
  }
}

BOOST_AUTO_TEST_CASE(gradual_unfreezing_adds_groups_at_its_epochs) {
  Setup s("model:\n  backbone: resnet18\n  freeze:\n    - name: gradual_unfreeze\n      frozen: ['layer*', 'conv1.*', 'bn1.*']\n"
          "      milestones:\n        - {epoch: 2, unfreeze: ['layer4.*'], lr: 0.001}\n        - {epoch: 4, unfreeze: ['layer3.*']}\n"
          "optimizer: {name: sgd, lr: 0.1}\n");
  auto groups_at = [&](std::int64_t epoch) { return graft::plan_optimizer(s.recipe, registry(), s.model(), s.at(epoch)); };
  const auto e0 = groups_at(0);
  BOOST_REQUIRE(e0.groups.size() == 1u);
  BOOST_TEST(e0.groups[0].names == (std::vector<std::string>{"fc.weight", "fc.bias"}));
  BOOST_TEST(groups_at(1).groups.size() == 1u);
  const auto e2 = groups_at(2);
  BOOST_REQUIRE(e2.groups.size() == 2u);
  BOOST_TEST(e2.groups[1].name == "unfrozen@2");
  BOOST_TEST(e2.groups[1].lr == 0.001);
  BOOST_TEST(e2.groups[1].names.front() == "layer4.0.conv1.weight");
  BOOST_TEST(s.model().named_parameters()["layer4.0.conv1.weight"].requires_grad());
  BOOST_TEST(!s.model().named_parameters()["layer3.0.conv1.weight"].requires_grad());
  const auto e5 = groups_at(5);
  BOOST_TEST(e5.groups[0].names.size() == 2u + 15u);  // fc + layer3 (no lr of its own: default group)
  // pure: asking about epoch 2 again gives the same answer
  BOOST_TEST(groups_at(2).groups[1].names == e2.groups[1].names);
}

BOOST_AUTO_TEST_CASE(frozen_stages_and_batchnorm_eval) {
  Setup s("model:\n  backbone: resnet18\n  freeze:\n    - {name: frozen_stages, n: 3}\n");
  const auto state = s.at(0);
  s.model().train();
  graft::apply_freeze(s.model(), state);
  BOOST_TEST(state.frozen.count("conv1.weight"));
  BOOST_TEST(state.frozen.count("layer1.1.bn2.bias"));
  BOOST_TEST(!state.frozen.count("layer2.0.conv1.weight"));
  BOOST_TEST(!s.model().named_children()["bn1"]->is_training());
  BOOST_TEST(s.model().named_children()["layer2"]->is_training());

  Setup bn("model:\n  backbone: resnet18\n  freeze:\n    - {name: freeze_bn, affine: true}\n");
  const auto b = bn.at(0);
  BOOST_TEST(b.eval_modules.size() == 20u);
  BOOST_TEST(b.frozen.size() == 40u);
  BOOST_TEST(contains(error_of([] { Setup x("model:\n  backbone: resnet18\n  freeze:\n    - {name: frozen_stages, n: 9}\n"); x.at(0); }),
                      "the model has only 7 stages with parameters"));
}

BOOST_AUTO_TEST_CASE(plan_errors) {
  BOOST_TEST(contains(error_of([] {
                        Setup s("model:\n  backbone: lenet\n  freeze: [{name: freeze, patterns: ['*']}]\noptimizer: {name: sgd, lr: 0.1}\n");
                        graft::make_optimizer(s.recipe, registry(), graft::plan_optimizer(s.recipe, registry(), s.model(), s.at(0)));
                      }),
                      "nothing to optimise: every parameter is frozen"));
  BOOST_TEST(contains(error_of([] { Setup s("model:\n  backbone: lenet\noptimizer: {name: sgd, lr: 0.1, nesterov: true}\n");
                                    graft::make_optimizer(s.recipe, registry(), graft::plan_optimizer(s.recipe, registry(), s.model(), s.at(0))); }),
                      "Nesterov momentum requires a momentum"));
  BOOST_TEST(contains(error_of([] { Setup s("model:\n  backbone: lenet\noptimizer: {name: sdg, lr: 0.1}\n"); }),
                      "unknown optimizer 'sdg' (did you mean 'sgd'?)"));
  BOOST_TEST(contains(error_of([] { Setup s("model:\n  backbone: lenet\noptimizer: {name: sgd, lr: 0.1, groups: [{lr: 1}]}\n");
                                    graft::plan_optimizer(s.recipe, registry(), s.model(), s.at(0)); }),
                      "selects nothing: give params:"));
  BOOST_TEST(contains(error_of([] { Setup s("model:\n  backbone: lenet\noptimizer: {name: sgd, lr: 0.1, gropus: []}\n"); }),
                      "unknown key 'gropus' in optimizer sgd (did you mean 'groups'?)"));
}

// The sgd plugin updates dense float32 CPU parameters in one fused pass; everything else
// (a transposed parameter, float64) takes LibTorch's SGD math. Both agree with LibTorch's
// optim::SGD (the same math as torch.optim.SGD) step after step, momentum buffers included.
BOOST_AUTO_TEST_CASE(sgd_plugin_matches_libtorch_sgd) {
  namespace optim = torch::optim;
  const std::vector<std::pair<std::string, optim::SGDOptions>> cases = {
      {"{name: sgd, lr: 0.1}", optim::SGDOptions(0.1)},
      {"{name: sgd, lr: 0.1, weight_decay: 0.01}", optim::SGDOptions(0.1).weight_decay(0.01)},
      {"{name: sgd, lr: 0.05, momentum: 0.9, weight_decay: 0.001}",
       optim::SGDOptions(0.05).momentum(0.9).weight_decay(0.001)},
      {"{name: sgd, lr: 0.05, momentum: 0.9, weight_decay: 0.001, nesterov: true}",
       optim::SGDOptions(0.05).momentum(0.9).weight_decay(0.001).nesterov(true)},
      {"{name: sgd, lr: 0.05, momentum: 0.5, dampening: 0.3}", optim::SGDOptions(0.05).momentum(0.5).dampening(0.3)},
  };
  for (const auto& [yaml, options] : cases) {
    BOOST_TEST_CONTEXT(yaml) {
      torch::manual_seed(0);
      std::vector<torch::Tensor> ours = {
          torch::randn({300, 200}),                     // above the parallel grain: split over threads
          torch::randn({7}),                            //
          torch::randn({20, 30}).t(),                   // not contiguous
          torch::randn({5}, torch::kDouble),            // not float32
      };
      std::vector<torch::Tensor> theirs;
      for (auto& p : ours) {
        p.requires_grad_(true);
        theirs.push_back(p.detach().clone().requires_grad_(true));
      }
      BOOST_REQUIRE(!ours[2].is_contiguous());
      const auto spec = graft::parse_yaml_text(yaml, "test");
      graft::ParamGroup group;
      group.name = "default";
      group.params = ours;
      for (std::size_t k = 0; k < ours.size(); ++k) group.names.push_back("p" + std::to_string(k));
      group.lr = options.lr();
      group.weight_decay = options.weight_decay();
      auto plugin = registry().create<graft::Kind::optimizer>(spec)({group});
      optim::SGD reference(theirs, options);
      for (int step = 0; step < 5; ++step) {
        for (std::size_t k = 0; k < ours.size(); ++k) {
          const auto g = torch::randn_like(ours[k]);
          ours[k].mutable_grad() = g.clone();
          theirs[k].mutable_grad() = g.clone();
        }
        plugin->step();
        reference.step();
        for (std::size_t k = 0; k < ours.size(); ++k)
          BOOST_TEST(torch::allclose(ours[k], theirs[k], 1e-5, 1e-6), "parameter " << k << ", step " << step);
      }
      std::size_t with_state = 0;
      for (const auto& p : ours) with_state += plugin->param_state(p).empty() ? 0 : 1;
      BOOST_TEST(with_state == reference.state().size());
      for (std::size_t k = 0; k < ours.size() && options.momentum() != 0; ++k) {
        const auto a = plugin->param_state(ours[k]).get<torch::Tensor>("momentum_buffer");
        const auto& b = static_cast<optim::SGDParamState&>(*reference.state().at(libtorch_state_key(reference, theirs[k])));
        BOOST_TEST(torch::allclose(a, b.momentum_buffer(), 1e-5, 1e-6), "momentum buffer " << k);
      }
    }
  }
}
