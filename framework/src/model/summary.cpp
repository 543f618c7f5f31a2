#include "graft/host/summary.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <set>

#include "graft/model.h"

namespace graft {

namespace {

struct Walker {
  const std::map<std::string, std::string>& origin;
  std::vector<SummaryRow> rows;

  SummaryRow row(const torch::nn::Module& m, const std::string& path, int depth) {
    SummaryRow r;
    r.path = path;
    r.type = type_name(m);
    r.depth = depth;
    std::set<std::string> origins;
    for (const auto& p : m.named_parameters()) {
      r.params += p.value().numel();
      if (p.value().requires_grad()) r.trainable += p.value().numel();
      const auto it = origin.find(path.empty() ? p.key() : path + "." + p.key());
      if (it != origin.end()) origins.insert(it->second);
    }
    r.origin = origins.empty() ? "" : origins.size() == 1 ? *origins.begin() : "mixed";
    return r;
  }

  // Rows for a leaf's inner modules: no shapes, its forward is its own code.
  void inner(const torch::nn::Module& m, const std::string& path, int depth) {
    for (const auto& c : m.named_children()) {
      const std::string p = path + "." + c.key();
      rows.push_back(row(*c.value(), p, depth));
      inner(*c.value(), p, depth + 1);
    }
  }

  torch::Tensor stages(StagesImpl& s, const std::string& path, int depth, torch::Tensor x) {
    for (const auto& [name, stage] : s.stages()) {
      auto& any = const_cast<torch::nn::AnyModule&>(stage);
      const std::string p = path.empty() ? name : path + "." + name;
      const std::size_t at = rows.size();
      rows.push_back(row(*any.ptr(), p, depth));
      if (auto* child = dynamic_cast<StagesImpl*>(any.ptr().get())) {
        x = stages(*child, p, depth + 1, x);
      } else {
        x = any.forward(x);
        inner(*any.ptr(), p, depth + 1);
      }
      rows[at].output_shape = x.sizes().vec();
    }
    return x;
  }
};

std::string dot_quote(const std::string& s) { return "\"" + s + "\""; }

void dot_stages(StagesImpl& s, const std::string& path, std::string& out, std::string& previous, int& cluster) {
  for (const auto& [name, stage] : s.stages()) {
    const std::string p = path.empty() ? name : path + "." + name;
    auto* child = dynamic_cast<StagesImpl*>(stage.ptr().get());
    if (child && child->size() > 0) {
      out += fmt::format("  subgraph cluster_{} {{\n    label={};\n", cluster++, dot_quote(p));
      dot_stages(*child, p, out, previous, cluster);
      out += "  }\n";
      continue;
    }
    std::int64_t params = 0;
    for (const auto& t : stage.ptr()->parameters()) params += t.numel();
    out += fmt::format("    {} [label={}];\n", dot_quote(p),
                       dot_quote(p + "\\n" + type_name(*stage.ptr()) + (params ? fmt::format("\\n{} params", params) : "")));
    if (!previous.empty()) out += fmt::format("    {} -> {};\n", dot_quote(previous), dot_quote(p));
    previous = p;
  }
}

}  // namespace

std::vector<SummaryRow> summarize(torch::nn::AnyModule& model, const std::vector<std::int64_t>& input_shape,
                                  const std::map<std::string, std::string>& origin) {
  Walker w{origin, {}};
  std::vector<std::int64_t> shape{1};
  shape.insert(shape.end(), input_shape.begin(), input_shape.end());
  torch::NoGradGuard no_grad;
  const bool training = model.ptr()->is_training();
  model.ptr()->eval();
  try {
    if (auto* s = dynamic_cast<StagesImpl*>(model.ptr().get())) {
      w.stages(*s, "", 0, torch::zeros(shape));
    } else {
      auto r = w.row(*model.ptr(), "", 0);
      r.output_shape = model.forward(torch::zeros(shape)).sizes().vec();
      w.rows.push_back(r);
      w.inner(*model.ptr(), "", 1);
    }
  } catch (const c10::Error& e) {
    model.ptr()->train(training);
    const std::string what = e.what_without_backtrace();
    throw Error::usage(fmt::format("the model does not run on input [1, {}]: {}", fmt::join(input_shape, ", "),
                                   what.substr(0, what.find('\n'))));
  }
  model.ptr()->train(training);
  return w.rows;
}

std::string to_dot(torch::nn::AnyModule& model, const std::string& name) {
  std::string out = "digraph " + dot_quote(name) + " {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n";
  std::string previous = "input";
  out += "    \"input\" [shape=ellipse];\n";
  int cluster = 0;
  if (auto* s = dynamic_cast<StagesImpl*>(model.ptr().get())) {
    dot_stages(*s, "", out, previous, cluster);
  } else {
    out += fmt::format("    {} [label={}];\n    \"input\" -> {};\n", dot_quote(name), dot_quote(name + "\\n" + type_name(*model.ptr())), dot_quote(name));
    previous = name;
  }
  out += fmt::format("    \"output\" [shape=ellipse];\n    {} -> \"output\";\n}}\n", dot_quote(previous));
  return out;
}

}  // namespace graft
