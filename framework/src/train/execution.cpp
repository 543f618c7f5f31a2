#include "execution.h"

#include <fmt/format.h>

#include "train/compat.h"
#include "train/parallel.h"

namespace graft::train {

AutocastScope::AutocastScope(const Amp& amp) : on_(amp.on) {
  if (on_) compat::set_cuda_autocast(true, amp.dtype);
}

AutocastScope::~AutocastScope() {
  if (on_) {
    compat::set_cuda_autocast(false, torch::kFloat);
    compat::clear_autocast_cache();
  }
}

namespace {

class SingleDevice : public Execution {
 public:
  SingleDevice(torch::nn::AnyModule module, const Settings& s)
      : module_(std::move(module)), device_(s.devices.main), amp_(s.amp), channels_last_(s.channels_last) {}

  torch::Tensor to_device(const torch::Tensor& t) const override {
    auto x = t.to(device_, /*non_blocking=*/true);
    if (channels_last_ && x.dim() == 4) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    return x;
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    AutocastScope scope(amp_);
    return module_.forward<torch::Tensor>(x);
  }
  std::string describe() const override { return device_.str(); }

 protected:
  torch::nn::AnyModule module_;
  torch::Device device_;
  Amp amp_;
  bool channels_last_;
};

class DataParallel : public SingleDevice {
 public:
  DataParallel(torch::nn::AnyModule module, const Settings& s)
      : SingleDevice(module, s), replicas_(module, s.devices.all), count_(s.devices.all.size()) {}

  torch::Tensor forward(const torch::Tensor& x) override {
    return replicas_.forward(x, [this](torch::nn::AnyModule& m, const torch::Tensor& in) {
      AutocastScope scope(amp_);
      return m.forward<torch::Tensor>(in);
    });
  }
  void after_backward() override { replicas_.reduce_gradients(); }
  void after_update() override { replicas_.sync_parameters(); }
  std::string describe() const override { return fmt::format("{} (DataParallel over {} devices)", device_.str(), count_); }

 private:
  Replicas replicas_;
  std::size_t count_;
};

}  // namespace

std::unique_ptr<Execution> make_execution(torch::nn::AnyModule module, const Settings& settings) {
  if (settings.devices.all.size() > 1) return std::make_unique<DataParallel>(std::move(module), settings);
  return std::make_unique<SingleDevice>(std::move(module), settings);
}

}  // namespace graft::train
