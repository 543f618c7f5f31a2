#include "execution.h"

#include <fmt/format.h>

#include "dist/reducer.h"
#include "graft/host/dist.h"
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

/// One rank of a multi-process run: the model starts as rank 0's, BatchNorm's buffers
/// follow rank 0's before every training forward (DDP's broadcast_buffers), and the
/// gradients are all-reduced in buckets during backward (dist/reducer.h).
class Distributed : public SingleDevice {
 public:
  Distributed(torch::nn::AnyModule module, const Settings& s, std::shared_ptr<dist::Group> group)
      : SingleDevice(module, s), group_(std::move(group)), module_ptr_(module.ptr()),
        reducer_(*group_, module_ptr_->parameters(), static_cast<std::size_t>(s.bucket_mb * 1024 * 1024)) {
    for (const auto& b : module_ptr_->buffers()) buffers_.push_back(b);
    after_load();
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    if (module_ptr_->is_training() && !buffers_.empty())
      group_->broadcast_all(buffers_, 0, "broadcast of buffers (BatchNorm statistics)");
    return SingleDevice::forward(x);
  }
  void before_backward(bool sync) override { reducer_.prepare(sync); }
  void after_backward() override { reducer_.finish(); }
  void after_load() override {
    std::vector<torch::Tensor> all = module_ptr_->parameters();
    all.insert(all.end(), buffers_.begin(), buffers_.end());
    group_->broadcast_all(all, 0, "broadcast of the model from rank 0");
  }
  double waited_seconds() const override { return reducer_.waited_seconds(); }
  std::string describe() const override {
    return fmt::format("{}, rank {} of {} ({})", device_.str(), group_->rank(), group_->size(), group_->backend());
  }

 private:
  std::shared_ptr<dist::Group> group_;
  std::shared_ptr<torch::nn::Module> module_ptr_;
  dist::Reducer reducer_;
  std::vector<torch::Tensor> buffers_;
};

}  // namespace

std::unique_ptr<Execution> make_execution(torch::nn::AnyModule module, const Settings& settings,
                                          std::shared_ptr<dist::Group> group) {
  if (group && group->size() > 1) return std::make_unique<Distributed>(std::move(module), settings, std::move(group));
  if (settings.devices.all.size() > 1) return std::make_unique<DataParallel>(std::move(module), settings);
  return std::make_unique<SingleDevice>(std::move(module), settings);
}

}  // namespace graft::train
