#include "graft/host/summary.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <set>

#include "graft/host/watch.h"
#include "graft/model.h"

namespace graft {

namespace {

struct Walker {
  const std::map<std::string, std::string>& origin;
  const std::map<std::string, std::vector<std::int64_t>>& shapes;
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
    if (const auto it = shapes.find(path); it != shapes.end()) r.output_shape = it->second;
    return r;
  }

  void children(const torch::nn::Module& m, const std::string& path, int depth) {
    for (const auto& c : m.named_children()) {
      const std::string p = path.empty() ? c.key() : path + "." + c.key();
      rows.push_back(row(*c.value(), p, depth));
      children(*c.value(), p, depth + 1);
    }
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
  std::vector<std::int64_t> shape{1};
  shape.insert(shape.end(), input_shape.begin(), input_shape.end());
  torch::nn::Module& root = *model.ptr();
  // what every child of a container returns (its last call's), in one forward
  std::map<std::string, std::vector<std::int64_t>> shapes;
  std::vector<std::int64_t> output;
  EvalScope eval(root);
  try {
    ForwardWatch watch(root, [&](const std::string& path, const torch::Tensor&, const torch::Tensor& out) {
      shapes[path] = out.sizes().vec();
    });
    output = model.forward(torch::zeros(shape)).sizes().vec();
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    throw Error::usage(fmt::format("the model does not run on input [1, {}]: {}", fmt::join(input_shape, ", "),
                                   what.substr(0, what.find('\n'))));
  }
  Walker w{origin, shapes, {}};
  // a container's children are the rows; any other root is one row with its own forward
  if (dynamic_cast<const Container*>(&root)) {
    w.children(root, "", 0);
  } else {
    w.rows.push_back(w.row(root, "", 0));
    w.rows.back().output_shape = output;
    w.children(root, "", 1);
  }
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
