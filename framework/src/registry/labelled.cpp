#include "labelled.h"

#include <memory>
#include <utility>

#include "graft/data.h"
#include "graft/host/registry.h"
#include "graft/metrics.h"

namespace graft::registry {

namespace {

struct Label {
  std::string who;
  SourceLoc where;
  template <class F> decltype(auto) operator()(F&& f) const {
    try {
      return f();
    } catch (...) {
      PluginFailure::rethrow(who, where);
    }
  }
};

class LabelledTransform final : public Transform {
 public:
  LabelledTransform(std::shared_ptr<Transform> t, Label label) : t_(std::move(t)), label_(std::move(label)) {}
  torch::Tensor apply(const torch::Tensor& image, Rng& rng) const override {
    return label_([&] { return t_->apply(image, rng); });
  }
  bool random() const override { return t_->random(); }
  std::vector<std::int64_t> output_shape(const std::vector<std::int64_t>& in) const override {
    return label_([&] { return t_->output_shape(in); });
  }
  torch::Tensor apply_lazy(const LazyImage& image, Rng& rng) const override {
    return label_([&] { return t_->apply_lazy(image, rng); });
  }

 private:
  std::shared_ptr<Transform> t_;
  Label label_;
};

class LabelledMetric final : public Metric {
 public:
  LabelledMetric(std::shared_ptr<Metric> m, Label label) : m_(std::move(m)), label_(std::move(label)) {}
  void reset() override { label_([&] { m_->reset(); }); }
  void update(const torch::Tensor& output, const torch::Tensor& target) override {
    label_([&] { m_->update(output, target); });
  }
  std::map<std::string, double> compute() const override { return label_([&] { return m_->compute(); }); }
  void merge(const State& other) override { label_([&] { m_->merge(other); }); }
  std::string report(const std::vector<std::string>& classes) const override {
    return label_([&] { return m_->report(classes); });
  }
  // (a checkpoint names the metric whose state it cannot write or read)
  void save_state(State& out) const override { m_->save_state(out); }
  void load_state(const State& in) override { m_->load_state(in); }

 private:
  std::shared_ptr<Metric> m_;
  Label label_;
};

class LabelledLoss final : public Loss {
 public:
  LabelledLoss(std::shared_ptr<Loss> l, Label label) : l_(std::move(l)), label_(std::move(label)) {}
  torch::Tensor forward(const torch::Tensor& output, const torch::Tensor& target) const override {
    return label_([&] { return l_->forward(output, target); });
  }

 private:
  std::shared_ptr<Loss> l_;
  Label label_;
};

template <Kind K, class Wrapper> std::any wrap(std::any product, Label label) {
  auto p = std::any_cast<product_t<K>>(std::move(product));
  if (!p) return p;
  return product_t<K>(std::make_shared<Wrapper>(std::move(p), std::move(label)));
}

}  // namespace

std::any labelled(Kind kind, std::any product, const std::string& who, const SourceLoc& where) {
  Label label{who, where};
  switch (kind) {
    case Kind::transform: return wrap<Kind::transform, LabelledTransform>(std::move(product), std::move(label));
    case Kind::metric: return wrap<Kind::metric, LabelledMetric>(std::move(product), std::move(label));
    case Kind::loss: return wrap<Kind::loss, LabelledLoss>(std::move(product), std::move(label));
    default: return product;
  }
}

}  // namespace graft::registry
