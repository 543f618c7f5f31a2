#include "graft/host/watch.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <optional>
#include <sstream>

namespace graft {

namespace {
thread_local ForwardWatch* current = nullptr;
thread_local FailureProbe* current_probe = nullptr;

std::unordered_map<const Container*, std::string> container_paths(const torch::nn::Module& root) {
  std::unordered_map<const Container*, std::string> paths;
  if (const auto* c = dynamic_cast<const Container*>(&root)) paths.emplace(c, "");
  for (const auto& m : root.named_modules("", /*include_self=*/false))
    if (const auto* c = dynamic_cast<const Container*>(m.value().get())) paths.emplace(c, m.key());
  return paths;
}
}  // namespace

void Container::ran(const std::string& name, const torch::Tensor& input, const torch::Tensor& output) const {
  if (current) current->report(*this, name, input, output);
}

ForwardWatch::ForwardWatch(const torch::nn::Module& root, Callback callback)
    : paths_(container_paths(root)), callback_(std::move(callback)), outer_(current) {
  current = this;
}

ForwardWatch::~ForwardWatch() { current = outer_; }

void ForwardWatch::report(const Container& container, const std::string& name, const torch::Tensor& input,
                          const torch::Tensor& output) const {
  const auto it = paths_.find(&container);
  if (it == paths_.end()) return;  // not a container of the watched model (a copy, say)
  callback_(it->second.empty() ? name : it->second + "." + name, input, output);
}

FailureProbe::FailureProbe(const torch::nn::Module& root) : paths_(container_paths(root)), outer_(current_probe) {
  current_probe = this;
}

FailureProbe::~FailureProbe() { current_probe = outer_; }

FailureProbe* FailureProbe::current() { return current_probe; }

void FailureProbe::threw(const Container& container, const std::string& name, const torch::Tensor& input) {
  if (!where_.empty()) return;  // an outer container of the child already named
  const auto it = paths_.find(&container);
  if (it == paths_.end()) return;
  std::string what;
  if (const auto* m = dynamic_cast<const torch::nn::Module*>(&container))
    for (const auto& c : m->named_children())
      if (c.key() == name) {
        std::ostringstream text;
        c.value()->pretty_print(text);
        what = " (" + text.str() + ")";
      }
  where_ = (it->second.empty() ? name : it->second + "." + name) + what;
  if (input.defined()) where_ += fmt::format(" got [{}]", fmt::join(input.sizes(), ", "));
}

namespace {
struct Found {};  // ends the forward once the probed module has run
}  // namespace

std::optional<std::vector<std::int64_t>> shape_at(torch::nn::AnyModule& model, const std::string& path,
                                                  const torch::Tensor& example, bool output) {
  torch::nn::Module& root = *model.ptr();
  EvalScope eval(root);
  if (path.empty()) return (output ? model.forward(example) : example).sizes().vec();
  std::optional<std::vector<std::int64_t>> shape;
  ForwardWatch watch(root, [&](const std::string& p, const torch::Tensor& in, const torch::Tensor& out) {
    if (p != path) return;
    const torch::Tensor& t = output ? out : in;
    if (t.defined()) shape = t.sizes().vec();
    throw Found{};
  });
  try {
    model.forward(example);
  } catch (const Found&) {
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    throw Error::usage("the model does not run on input [" + fmt::format("{}", fmt::join(example.sizes(), ", ")) +
                       "] up to '" + path + "': " + what.substr(0, what.find('\n')));
  }
  return shape;
}

}  // namespace graft
