#define BOOST_TEST_MODULE model
#include <boost/test/unit_test.hpp>
#include <torch/torch.h>

#include "graft/model.h"
#include "support/run.h"

namespace nn = torch::nn;
using graft::test::contains;

namespace {
std::vector<std::string> keys(const nn::Module& m) {
  std::vector<std::string> k;
  for (const auto& p : m.named_parameters()) k.push_back(p.key());
  return k;
}

graft::Stages three_layers() {
  graft::Stages s;
  s->append("fc1", nn::AnyModule(nn::Linear(4, 8)));
  s->append("relu", nn::AnyModule(nn::ReLU()));
  s->append("fc2", nn::AnyModule(nn::Linear(8, 2)));
  return s;
}
}  // namespace

BOOST_AUTO_TEST_CASE(forwards_children_in_order) {
  torch::manual_seed(0);
  auto s = three_layers();
  const auto x = torch::randn({3, 4});
  auto fc1 = s->named_children()["fc1"]->as<nn::Linear>();
  auto fc2 = s->named_children()["fc2"]->as<nn::Linear>();
  const auto expected = fc2->forward(torch::relu(fc1->forward(x)));
  BOOST_TEST(torch::equal(s->forward(x), expected));
  BOOST_TEST((keys(*s) == std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}));
}

BOOST_AUTO_TEST_CASE(insert_replace_remove_keep_names_and_order) {
  auto s = three_layers();
  s->insert(s->index_of("fc2"), "drop", nn::AnyModule(nn::Dropout(0.1)));
  s->insert(0, "pre", nn::AnyModule(nn::Linear(4, 4)));
  BOOST_TEST((keys(*s) == std::vector<std::string>{"pre.weight", "pre.bias", "fc1.weight", "fc1.bias",
                                                    "fc2.weight", "fc2.bias"}));
  std::vector<std::string> names;
  for (const auto& c : s->named_children()) names.push_back(c.key());
  BOOST_TEST((names == std::vector<std::string>{"pre", "fc1", "relu", "drop", "fc2"}));

  s->replace("fc2", nn::AnyModule(nn::Linear(8, 5)));
  BOOST_TEST(s->forward(torch::zeros({1, 4})).size(1) == 5);
  BOOST_TEST(s->named_parameters()["fc2.weight"].size(0) == 5);

  s->remove("pre");
  BOOST_TEST(!s->contains("pre"));
  BOOST_TEST(keys(*s).front() == "fc1.weight");
  BOOST_TEST(s->forward(torch::zeros({2, 4})).sizes() == torch::IntArrayRef({2, 5}));
}

BOOST_AUTO_TEST_CASE(bad_edits_are_errors) {
  auto s = three_layers();
  BOOST_CHECK_THROW(s->append("fc1", nn::AnyModule(nn::ReLU())), graft::Error);
  BOOST_CHECK_THROW(s->append("a.b", nn::AnyModule(nn::ReLU())), graft::Error);
  BOOST_CHECK_THROW(s->replace("nope", nn::AnyModule(nn::ReLU())), graft::Error);
  BOOST_CHECK_THROW(s->remove("nope"), graft::Error);
  BOOST_TEST(s->size() == 3u);
}

BOOST_AUTO_TEST_CASE(clone_is_deep_and_equal) {
  graft::Stages inner;
  inner->append("0", nn::AnyModule(nn::Linear(4, 4)));
  inner->append("1", nn::AnyModule(nn::BatchNorm1d(4)));
  graft::Stages outer;
  outer->append("body", nn::AnyModule(inner));
  outer->append("head", nn::AnyModule(nn::Linear(4, 2)));
  outer->eval();

  auto copy = std::dynamic_pointer_cast<graft::StagesImpl>(outer->clone());
  BOOST_REQUIRE(copy);
  BOOST_TEST(keys(*copy) == keys(*outer));
  const auto x = torch::randn({3, 4});
  BOOST_TEST(torch::equal(copy->forward(x), outer->forward(x)));
  BOOST_TEST(!copy->is_training());
  // Deep: changing the copy leaves the original untouched.
  torch::NoGradGuard no_grad;
  copy->named_parameters()["head.weight"].fill_(1.0);
  BOOST_TEST(!torch::equal(copy->named_parameters()["head.weight"], outer->named_parameters()["head.weight"]));
  BOOST_TEST(copy->named_buffers()["body.1.running_mean"].data_ptr() !=
             outer->named_buffers()["body.1.running_mean"].data_ptr());
}

BOOST_AUTO_TEST_CASE(tree_prints_like_python) {
  auto s = three_layers();
  const auto text = graft::describe_tree(*s, "Net");
  BOOST_TEST(text ==
             "Net(\n"
             "  (fc1): Linear(in_features=4, out_features=8, bias=true)\n"
             "  (relu): ReLU()\n"
             "  (fc2): Linear(in_features=8, out_features=2, bias=true)\n"
             ")");
  const auto count = graft::count_parameters(*s);
  BOOST_TEST(count.total == 4 * 8 + 8 + 8 * 2 + 2);
  s->named_parameters()["fc1.weight"].set_requires_grad(false);
  BOOST_TEST(graft::count_parameters(*s).trainable == count.total - 32);
}

namespace {
// A residual leaf as a backbone author writes one.
struct ResidualImpl : graft::Block<ResidualImpl> {
  explicit ResidualImpl(std::int64_t c) {
    add("fc", nn::Linear(c, c));
    add("bn", nn::BatchNorm1d(c));
  }
  torch::Tensor forward(torch::Tensor x) { return torch::relu(call("bn", call("fc", x)) + x); }
};
TORCH_MODULE(Residual);
}  // namespace

BOOST_AUTO_TEST_CASE(blocks_forward_clone_deeply_and_allow_replacement) {
  torch::manual_seed(0);
  Residual block(4);
  block->eval();
  const auto x = torch::randn({2, 4});
  const auto y = block->forward(x);
  auto fc = block->named_children()["fc"]->as<nn::Linear>();
  auto bn = block->named_children()["bn"]->as<nn::BatchNorm1d>();
  BOOST_TEST(torch::allclose(y, torch::relu(bn->forward(fc->forward(x)) + x)));

  auto copy = std::dynamic_pointer_cast<ResidualImpl>(block->clone());
  BOOST_REQUIRE(copy);
  BOOST_TEST(torch::equal(copy->forward(x), y));
  BOOST_TEST(copy->named_parameters()["fc.weight"].data_ptr() != block->named_parameters()["fc.weight"].data_ptr());

  block->replace_child("fc", nn::AnyModule(nn::Identity()));
  BOOST_TEST(block->named_parameters().size() == 2u);  // only bn's weight and bias remain
  BOOST_TEST(torch::allclose(block->forward(x), torch::relu(bn->forward(x) + x)));
  BOOST_TEST(torch::equal(copy->forward(x), y));  // the clone kept its own fc
  BOOST_CHECK_THROW(block->replace_child("nope", nn::AnyModule(nn::Identity())), graft::Error);
}
