// The trainer's units alone: graft::State (the plugins' state type), the fp16 loss scaler,
// and the optimizer step's accumulation, unit-tested on the CPU.
#define BOOST_TEST_MODULE train_units
#include <boost/test/unit_test.hpp>

#include <limits>

#include <torch/torch.h>

#include "graft/state.h"
#include "support/run.h"
#include "train/loss_scaler.h"

using graft::test::contains;

BOOST_AUTO_TEST_CASE(state_keeps_typed_values_in_order) {
  graft::State s;
  s.set("best", 0.25);
  s.set("wait", 3);            // any integer: int64
  s.set("on", true);           // a bool stays a bool (not a number)
  s.set("name", "val/loss");   // text: a string
  s.set("ks", std::vector<std::int64_t>{1, 5});
  s.set("t", torch::ones({2}));
  s.set("none", std::monostate{});
  s.set("best", 0.5);          // replaced in place
  BOOST_TEST(s.keys() == (std::vector<std::string>{"best", "wait", "on", "name", "ks", "t", "none"}));
  BOOST_TEST(s.get<double>("best") == 0.5);
  BOOST_TEST(s.get<std::int64_t>("wait") == 3);
  BOOST_TEST(s.get<double>("wait") == 3.0);  // an int reads as a number
  BOOST_TEST(s.get<bool>("on"));
  BOOST_TEST(std::holds_alternative<bool>(s.at("on")));
  BOOST_TEST(s.get<std::string>("name") == "val/loss");
  BOOST_TEST(s.get<std::vector<std::int64_t>>("ks") == (std::vector<std::int64_t>{1, 5}));
  BOOST_TEST(torch::equal(s.get<torch::Tensor>("t"), torch::ones({2})));
  BOOST_TEST(s.get<double>("absent", 7.0) == 7.0);
  // a double is never narrowed to float on the way in
  s.set("precise", 0.1);
  BOOST_TEST(s.get<double>("precise") == 0.1);
}

BOOST_AUTO_TEST_CASE(state_reads_name_the_key_and_the_types) {
  graft::State s;
  s.set("best", "high");
  try {
    (void)s.get<double>("best");
    BOOST_TEST(false);
  } catch (const graft::Error& e) {
    BOOST_TEST(std::string(e.what()) == "'best': expected a number, found a string");
  }
  try {
    (void)s.get<std::int64_t>("wait");
    BOOST_TEST(false);
  } catch (const graft::Error& e) {
    BOOST_TEST(std::string(e.what()) == "no 'wait' in the saved state");
  }
  BOOST_CHECK_THROW((void)s.get<double>("best", 1.0), graft::Error);  // present but mistyped: no fallback
}

BOOST_AUTO_TEST_CASE(loss_scaler_unscales_with_one_found_inf_and_backs_off) {
  graft::train::LossScaler scaler(true, /*init_scale=*/1024.0, 2.0, 0.5, /*growth_interval=*/3);
  auto a = torch::zeros({3}, torch::requires_grad()), b = torch::zeros({2}, torch::requires_grad()),
       frozen = torch::zeros({2}, torch::requires_grad());
  const std::vector<torch::Tensor> params = {a, b, frozen};
  auto set_grads = [&](float ga, float gb) {
    a.mutable_grad() = torch::full({3}, ga);
    b.mutable_grad() = torch::full({2}, gb);
    frozen.mutable_grad() = torch::Tensor();  // a parameter without gradient is skipped
  };
  BOOST_TEST(scaler.scaled(torch::tensor(2.0)).item<double>() == 2048.0);

  set_grads(2048.f, 512.f);
  BOOST_TEST(scaler.unscale(params));
  BOOST_TEST(torch::equal(a.grad(), torch::full({3}, 2.f)));  // divided by the scale
  BOOST_TEST(torch::equal(b.grad(), torch::full({2}, 0.5f)));
  scaler.update(true);
  BOOST_TEST(scaler.scale() == 1024.0);

  set_grads(1.f, std::numeric_limits<float>::infinity());  // an overflow in one tensor
  BOOST_TEST(!scaler.unscale(params));
  scaler.update(false);
  BOOST_TEST(scaler.scale() == 512.0);  // backed off, good-step count restarted

  set_grads(std::nanf(""), 1.f);
  BOOST_TEST(!scaler.unscale(params));
  scaler.update(false);
  BOOST_TEST(scaler.scale() == 256.0);

  for (int k = 0; k < 3; ++k) scaler.update(true);  // growth_interval good steps: grows
  BOOST_TEST(scaler.scale() == 512.0);

  // its state round-trips, and a disabled scaler leaves the loss alone
  graft::State saved;
  scaler.scale();
  scaler.update(true);
  scaler.save_state(saved);
  graft::train::LossScaler again(true, 1.0, 2.0, 0.5, 3);
  again.load_state(saved);
  BOOST_TEST(again.scale() == 512.0);
  again.update(true);
  again.update(true);  // the third good step in a row since the growth: grows again
  BOOST_TEST(again.scale() == 1024.0);
  graft::train::LossScaler off(false);
  BOOST_TEST(off.scaled(torch::tensor(3.0)).item<double>() == 3.0);
}
