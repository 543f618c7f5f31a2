// The recipe's `data:` section: the dataset plugin's splits, then class subset, validation
// hold-out and samples per class (in that order, all seeded by the recipe's seed), the
// transforms (checked on one real sample) and the loader options.
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "graft/host/data_plan.h"
#include "graft/host/weights.h"

#include "io/dtype_name.h"

namespace graft {

const Schema& data_schema() {
  static const Schema schema = {
      KeySpec::required_key("dataset", ValueType::any, "dataset plugin: a name, or a map with name: and its keys"),
      KeySpec("train_split", "train", "the split trained on"),
      KeySpec("test_split", "test", "the split `graft eval` measures"),
      KeySpec("val", ValueType::any, "test",
              "validation: test (the test split), another split, a fraction of train (0.1: seeded, stratified) or none"),
      KeySpec("classes", ValueType::int_list, "~", "keep these classes in every split, relabelled 0..k-1 in this order")
          .non_empty(),
      KeySpec("per_class", ValueType::integer, "~", "keep this many training samples per class (seeded, after val)").min(1),
      KeySpec("batch_size", 64, "training batch size").min(1),
      KeySpec("eval_batch_size", ValueType::integer, "~", "evaluation batch size (default: batch_size)").min(1),
      KeySpec("workers", ValueType::any, "auto", "loader threads: an integer (0: the training thread) or auto"),
      KeySpec("prefetch", 2, "batches made ahead, per worker").min(1),
      KeySpec("shuffle", true, "a new seeded order every epoch"),
      KeySpec("drop_last", false, "leave out the last, smaller training batch"),
      KeySpec("transforms", ValueType::section, "~", "training transforms, in order (default [to_tensor])"),
      KeySpec("eval_transforms", ValueType::any, "~",
              "evaluation transforms, or pretrained (torchvision's for model.weights; default: the non-random ones of transforms)"),
  };
  return schema;
}

namespace {

// Seed streams of the seeded choices (the "epoch" argument of Rng::seed_for).
constexpr std::uint64_t kValStream = 0x76616c0000000001ULL;       // "val"
constexpr std::uint64_t kPerClassStream = 0x7063000000000002ULL;  // "pc"

std::string join(const std::vector<std::string>& v, const std::string& sep = ", ") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

std::string shape_str(const std::vector<std::int64_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

/// A view of some samples of a dataset, with its classes renumbered.
class Subset : public Dataset {
 public:
  Subset(std::shared_ptr<Dataset> base, std::vector<std::int64_t> indices, std::vector<std::int64_t> targets,
         std::vector<std::string> classes)
      : base_(std::move(base)), indices_(std::move(indices)), targets_(std::move(targets)), classes_(std::move(classes)) {}
  std::int64_t size() const override { return static_cast<std::int64_t>(indices_.size()); }
  Sample get(std::int64_t i) const override {
    if (i < 0 || i >= size()) throw Error::runtime("sample index " + std::to_string(i) + " out of range");
    Sample s = base_->get(indices_[static_cast<std::size_t>(i)]);
    s.target = targets_[static_cast<std::size_t>(i)];
    return s;
  }
  LazySample get_lazy(std::int64_t i) const override {
    if (i < 0 || i >= size()) throw Error::runtime("sample index " + std::to_string(i) + " out of range");
    LazySample s = base_->get_lazy(indices_[static_cast<std::size_t>(i)]);
    s.target = targets_[static_cast<std::size_t>(i)];
    return s;
  }
  std::vector<std::int64_t> targets() const override { return targets_; }
  std::vector<std::string> classes() const override { return classes_; }

 private:
  std::shared_ptr<Dataset> base_;
  std::vector<std::int64_t> indices_, targets_;
  std::vector<std::string> classes_;
};

/// Which samples of a split are kept, with their (new) classes.
struct Selection {
  std::vector<std::int64_t> indices, targets;
};

Selection select_classes(const Dataset& d, const std::vector<std::int64_t>& relabel) {
  Selection s;
  const auto t = d.targets();
  for (std::size_t i = 0; i < t.size(); ++i) {
    const auto c = t[i];
    const auto to = c >= 0 && c < static_cast<std::int64_t>(relabel.size()) ? relabel[static_cast<std::size_t>(c)] : -1;
    if (to < 0) continue;
    s.indices.push_back(static_cast<std::int64_t>(i));
    s.targets.push_back(to);
  }
  return s;
}

/// Splits `s` per class: each class's samples are shuffled with `rng` and the first
/// `take(count)` of them go to the first result. Both results keep the dataset order.
template <class Take>
std::pair<Selection, Selection> split_per_class(const Selection& s, std::int64_t num_classes, Rng& rng, Take take) {
  std::vector<std::vector<std::size_t>> by_class(static_cast<std::size_t>(num_classes));
  for (std::size_t k = 0; k < s.targets.size(); ++k) by_class[static_cast<std::size_t>(s.targets[k])].push_back(k);
  std::vector<char> chosen(s.indices.size(), 0);
  for (std::int64_t c = 0; c < num_classes; ++c) {
    auto& members = by_class[static_cast<std::size_t>(c)];
    for (std::int64_t i = static_cast<std::int64_t>(members.size()) - 1; i > 0; --i)
      std::swap(members[static_cast<std::size_t>(i)], members[static_cast<std::size_t>(rng.integer(0, i))]);
    const auto n = take(c, static_cast<std::int64_t>(members.size()));
    for (std::int64_t i = 0; i < n; ++i) chosen[members[static_cast<std::size_t>(i)]] = 1;
  }
  std::pair<Selection, Selection> out;
  for (std::size_t k = 0; k < s.indices.size(); ++k) {
    auto& to = chosen[k] ? out.first : out.second;
    to.indices.push_back(s.indices[k]);
    to.targets.push_back(s.targets[k]);
  }
  return out;
}

std::shared_ptr<Dataset> subset(std::shared_ptr<Dataset> base, Selection s, const std::vector<std::string>& classes) {
  return std::make_shared<Subset>(std::move(base), std::move(s.indices), std::move(s.targets), classes);
}

/// Opens a split; the dataset's own errors (which name a file) are located at `at`.
std::shared_ptr<Dataset> open_split(const DataSource& source, const std::string& split, const Config& at,
                                    const Config& dataset_key, const std::string& dataset) {
  const auto available = source.splits();
  if (std::find(available.begin(), available.end(), split) == available.end())
    at.fail("unknown split '" + split + "' of dataset " + dataset + " (available: " + join(available) + ")");
  try {
    auto d = source.open(split);
    if (!d) dataset_key.fail(dataset + " opened no data for split '" + split + "'");
    return d;
  } catch (const Error& e) {
    if (e.where().known()) throw;
    dataset_key.fail(dataset + ": " + e.message());
  }
}

bool is_number(const std::string& text) {
  char* end = nullptr;
  std::strtod(text.c_str(), &end);
  return !text.empty() && end == text.c_str() + text.size();
}

struct Pipeline {
  std::vector<std::shared_ptr<Transform>> transforms;
  std::vector<Config> specs;
};

Pipeline make_pipeline(const Registry& registry, const Config& list) {
  Pipeline p;
  if (!list.is_list()) list.fail("expected a list of transforms (names or maps with name:)");
  for (const auto& spec : list.items()) {
    p.transforms.push_back(registry.create<Kind::transform>(spec));
    p.specs.push_back(spec);
  }
  return p;
}

/// Runs a pipeline on one sample, with each transform's error located at its spec.
torch::Tensor run_pipeline(const Pipeline& p, torch::Tensor x, std::uint64_t seed) {
  Rng rng(Rng::seed_for(seed, 0, 0));
  for (std::size_t i = 0; i < p.transforms.size(); ++i) {
    const auto in = x.sizes().vec();
    try {
      x = p.transforms[i]->apply(x, rng);
    } catch (const Error& e) {
      p.specs[i].fail(e.message() + " (on a " + shape_str(in) + " sample)");
    } catch (const c10::Error& e) {
      const std::string what = e.what_without_backtrace();
      p.specs[i].fail(what.substr(0, what.find('\n')) + " (on a " + shape_str(in) + " sample)");
    }
  }
  return x;
}

/// The classes of a dataset (its names, or 0..n-1 from its targets), after `data.classes`
/// keeps some of them and relabels them 0..k-1.
struct ClassMap {
  std::vector<std::string> names;
  std::vector<std::int64_t> relabel;  ///< dataset class -> kept class, or -1
  bool subsetting = false;
};

ClassMap class_map(const Dataset& d, const Config& data, const std::string& dataset) {
  ClassMap m;
  auto names = d.classes();
  std::int64_t num_classes = static_cast<std::int64_t>(names.size());
  if (num_classes == 0) {
    for (auto t : d.targets()) num_classes = std::max(num_classes, t + 1);
    for (std::int64_t c = 0; c < num_classes; ++c) names.push_back(std::to_string(c));
  }
  m.relabel.resize(static_cast<std::size_t>(num_classes));
  for (std::int64_t c = 0; c < num_classes; ++c) m.relabel[static_cast<std::size_t>(c)] = c;
  m.subsetting = !data["classes"].is_null();
  if (!m.subsetting) {
    m.names = names;
    return m;
  }
  const auto keep = data.get<std::vector<std::int64_t>>("classes");
  std::fill(m.relabel.begin(), m.relabel.end(), -1);
  for (std::size_t k = 0; k < keep.size(); ++k) {
    const auto c = keep[k];
    if (c < 0 || c >= num_classes)
      data["classes"][k].fail("class " + std::to_string(c) + " is out of range: " + dataset + " has " +
                              std::to_string(num_classes) + " classes (0.." + std::to_string(num_classes - 1) + ")");
    if (m.relabel[static_cast<std::size_t>(c)] >= 0) data["classes"][k].fail("class " + std::to_string(c) + " is listed twice");
    m.relabel[static_cast<std::size_t>(c)] = static_cast<std::int64_t>(k);
    m.names.push_back(names[static_cast<std::size_t>(c)]);
  }
  return m;
}

std::string class_count_line(const Dataset& d, std::int64_t num_classes) {
  std::vector<std::int64_t> counts(static_cast<std::size_t>(num_classes), 0);
  for (auto t : d.targets())
    if (t >= 0 && t < num_classes) ++counts[static_cast<std::size_t>(t)];
  const auto [lo, hi] = std::minmax_element(counts.begin(), counts.end());
  if (counts.empty()) return "";
  return *lo == *hi ? std::to_string(*lo) + " per class" : std::to_string(*lo) + ".." + std::to_string(*hi) + " per class";
}

/// `data.eval_transforms`: the recipe's list; for `pretrained`, the evaluation
/// preprocessing torchvision publishes with the weights of `model.weights`.
Config eval_transforms_of(const Config& root, const Config& data) {
  const Config at = data["eval_transforms"];
  if (!at.is_scalar()) return at;
  if (at.scalar() != "pretrained") at.fail("expected a list of transforms, or pretrained");
  const auto model = torchvision_model_of(root);
  const auto meta = model.empty() ? std::nullopt : torchvision_meta(model);
  if (!meta) at.fail("pretrained: the evaluation preprocessing of torchvision's weights needs model.weights: torchvision:NAME");
  return parse_yaml_text(meta->transforms_yaml(), at.where().str() + ": data.eval_transforms: pretrained (torchvision:" +
                                                       model + ")");
}

/// The training and evaluation transforms of `data:`, each checked on one real sample:
/// `train_sample` (undefined when only evaluating) and `eval_sample`.
void plan_transforms(DataPlan& plan, const Registry& registry, const Config& root, const Config& data, std::uint64_t seed,
                     const torch::Tensor& train_sample, const torch::Tensor& eval_sample) {
  Pipeline train_p, eval_p;
  if (data["transforms"].is_null()) {
    const Config def = parse_yaml_text("[to_tensor]", "the default of data.transforms");
    train_p = make_pipeline(registry, def);
  } else {
    train_p = make_pipeline(registry, data["transforms"]);
  }
  const bool eval_written = !data["eval_transforms"].is_null();
  const Config eval_list = eval_written ? eval_transforms_of(root, data) : Config();
  if (eval_written) {
    eval_p = make_pipeline(registry, eval_list);
  } else {
    for (std::size_t i = 0; i < train_p.transforms.size(); ++i)
      if (!train_p.transforms[i]->random()) {
        eval_p.transforms.push_back(train_p.transforms[i]);
        eval_p.specs.push_back(train_p.specs[i]);
      }
  }
  const Config train_at = data["transforms"];
  const Config eval_at = eval_written ? eval_list : data["transforms"];
  torch::Tensor out;
  if (train_sample.defined()) {  // training first: its error is the one to fix first
    out = run_pipeline(train_p, train_sample, seed);
    if (!out.is_floating_point())
      train_at.fail("the training transforms end with " + dtype_name(out.scalar_type()) + " images; add to_tensor");
  }
  const auto eval_out = run_pipeline(eval_p, eval_sample, seed);
  if (!eval_out.is_floating_point())
    eval_at.fail("the evaluation transforms end with " + dtype_name(eval_out.scalar_type()) +
                 " images; add to_tensor");
  if (train_sample.defined()) {
    if (out.sizes() != eval_out.sizes())
      eval_at.fail("the evaluation transforms" + std::string(eval_written ? "" : " (the non-random ones of data.transforms)") +
                   " give " + shape_str(eval_out.sizes().vec()) + " images but training gets " +
                   shape_str(out.sizes().vec()) + (eval_written ? "" : "; write data.eval_transforms"));
  }
  plan.train_transforms = train_p.transforms;
  plan.eval_transforms = eval_p.transforms;
  for (const auto& spec : eval_p.specs) plan.eval_transform_specs.push_back(spec);
  plan.sample_shape = eval_out.sizes().vec();
}

/// Loader options of `data:`.
void plan_loaders(DataPlan& plan, const Config& data, std::uint64_t seed) {
  LoaderOptions& o = plan.train_options;
  o.seed = seed;
  o.batch_size = data.get<std::int64_t>("batch_size");
  o.prefetch = data.get<std::int64_t>("prefetch");
  o.shuffle = data.get<bool>("shuffle");
  o.drop_last = data.get<bool>("drop_last");
  const Config workers = data["workers"];
  if (workers.scalar() == "auto") {
    o.workers = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::thread::hardware_concurrency()));
  } else {
    o.workers = workers.as<std::int64_t>();
    if (o.workers < 0) workers.fail("must be auto or at least 0, got " + std::to_string(o.workers));
  }
  plan.eval_options = o;
  plan.eval_options.shuffle = false;
  plan.eval_options.drop_last = false;
  if (!data["eval_batch_size"].is_null()) plan.eval_options.batch_size = data.get<std::int64_t>("eval_batch_size");
}

}  // namespace

Config expand_pretrained_transforms(const Config& root) {
  const Config data = root["data"];
  if (!data.is_map() || !data["eval_transforms"].is_scalar()) return root;
  const Config list = eval_transforms_of(root, data);
  std::string text = "data:\n  eval_transforms:\n";
  std::istringstream lines(list.to_yaml());
  for (std::string line; std::getline(lines, line);) text += "    " + line + "\n";
  return merge(root, parse_yaml_text(text, list.where().file));
}

std::vector<Config> eval_transform_specs(const Recipe& recipe, const Registry& registry) {
  const Config root = recipe.root;
  if (root["data"].is_null()) return {};
  const Config data = root["data"].validated(data_schema(), "data");
  if (!data["eval_transforms"].is_null()) return make_pipeline(registry, eval_transforms_of(root, data)).specs;
  const Pipeline train = make_pipeline(registry, data["transforms"].is_null()
                                                     ? parse_yaml_text("[to_tensor]", "the default of data.transforms")
                                                     : data["transforms"]);
  std::vector<Config> out;
  for (std::size_t i = 0; i < train.transforms.size(); ++i)
    if (!train.transforms[i]->random()) out.push_back(train.specs[i]);
  return out;
}

std::vector<std::shared_ptr<Transform>> build_transforms(const Registry& registry, const Config& list) {
  return make_pipeline(registry, list).transforms;
}

DataPlan build_data(const Recipe& recipe, const Registry& registry, const std::string& only) {
  const Config root = recipe.root;
  if (root["data"].is_null()) root.fail("the recipe has no data: section");
  const Config data = root["data"].validated(data_schema(), "data");
  const auto seed = static_cast<std::uint64_t>(root.get<std::int64_t>("seed", 0));
  DataPlan plan;

  const Config dataset_key = data["dataset"];
  const auto dataset = Registry::spec_name(dataset_key);
  auto source = registry.create<Kind::dataset>(dataset_key);
  if (!source) dataset_key.fail("dataset plugin " + dataset + " returned nothing");
  auto open = [&](const std::string& split, const Config& at) {
    return open_split(*source, split, at, dataset_key, dataset);
  };

  const auto train_split = data.get<std::string>("train_split");
  const auto test_split = data.get<std::string>("test_split");
  const auto available = source->splits();
  auto has_split = [&](const std::string& s) { return std::find(available.begin(), available.end(), s) != available.end(); };
  // Evaluating one split: open only it (a dataset may have nothing else), unless it is a
  // hold-out of the training split.
  if (!only.empty() && only != "train") {
    const Config val_key = data["val"];
    std::string split;
    Config at = data["test_split"];
    if (only == "test") {
      split = test_split;
    } else if (val_key.is_scalar() && val_key.scalar() == "none") {
      val_key.fail("the recipe has no val split (data.val: none)");
    } else if (val_key.is_scalar() && val_key.scalar() != "none" && !is_number(val_key.scalar())) {
      split = val_key.scalar() == "test" ? test_split : val_key.scalar();
      at = val_key.scalar() == "test" ? data["test_split"] : val_key;
    }
    if (split == "none") at.fail("the recipe has no " + only + " split (data.test_split: none)");
    if (!split.empty()) {
      auto d = open(split, at);
      const ClassMap cm = class_map(*d, data, dataset);
      plan.classes = cm.names;
      auto& role = only == "test" ? plan.test : plan.val;
      role = cm.subsetting ? subset(d, select_classes(*d, cm.relabel), cm.names) : d;
      if (role->size() == 0) at.fail("the " + split + " split has no samples");
      plan_transforms(plan, registry, root, data, seed, torch::Tensor(), role->get(0).input);
      plan_loaders(plan, data, seed);
      plan.description = fmt::format("{}: {} samples ({} {})\nclasses ({}): {}", only, role->size(), dataset, split,
                                     plan.classes.size(), join(plan.classes));
      return plan;
    }
  }
  auto train = open(train_split, data["train_split"]);
  // The default test split may be absent (an image folder with only training images).
  std::shared_ptr<Dataset> test;
  if (test_split != "none" && (data.has("test_split") || has_split(test_split)))
    test = test_split == train_split ? train : open(test_split, data["test_split"]);

  // Validation: a split, a fraction of train, or none.
  const Config val_key = data["val"];
  if (!val_key.is_scalar()) val_key.fail("expected test, a split name, a fraction like 0.1, or none");
  const auto val_text = val_key.scalar();
  double fraction = 0;
  std::shared_ptr<Dataset> val;
  std::string val_source;
  {
    const double f = std::strtod(val_text.c_str(), nullptr);
    if (is_number(val_text)) {
      if (!(f > 0 && f < 1)) val_key.fail("a fraction of the training split must be between 0 and 1, got " + val_text);
      fraction = f;
    } else if (val_text == "none") {
    } else if (val_text == test_split && test) {
      val = test;
      val_source = test_split;
    } else if (val_text == "test" && !data.has("val") && !has_split("test")) {
      // the default, on a dataset without a test split: no validation
    } else {
      val = val_text == train_split ? train : open(val_text, val_key);
      val_source = val_text;
    }
  }

  const ClassMap cm = class_map(*train, data, dataset);
  const auto& names = cm.names;
  const std::int64_t num_classes = static_cast<std::int64_t>(names.size());
  const auto& relabel = cm.relabel;
  const bool subsetting = cm.subsetting;
  auto restrict = [&](const std::shared_ptr<Dataset>& d) -> std::shared_ptr<Dataset> {
    if (!d || !subsetting) return d;
    return subset(d, select_classes(*d, relabel), names);
  };

  Selection train_sel = select_classes(*train, relabel);
  plan.test = restrict(test);
  if (fraction > 0) {
    Rng rng(Rng::seed_for(seed, kValStream, 0));
    // Each class keeps at least one training sample.
    auto [held, rest] = split_per_class(train_sel, num_classes, rng, [&](std::int64_t, std::int64_t n) {
      return std::min(static_cast<std::int64_t>(std::llround(fraction * static_cast<double>(n))), std::max<std::int64_t>(n - 1, 0));
    });
    if (held.indices.empty())
      val_key.fail("a fraction of " + val_text + " holds out no sample of the " +
                   std::to_string(train_sel.indices.size()) + " training samples");
    plan.val = subset(train, std::move(held), names);
    val_source = val_text + " of " + train_split;
    train_sel = std::move(rest);
  } else {
    plan.val = val && val == test ? plan.test : restrict(val);
  }
  const bool per_class = !data["per_class"].is_null();
  if (per_class) {
    const auto k = data.get<std::int64_t>("per_class");
    std::vector<std::int64_t> counts(static_cast<std::size_t>(num_classes), 0);
    for (auto t : train_sel.targets) ++counts[static_cast<std::size_t>(t)];
    for (std::int64_t c = 0; c < num_classes; ++c)
      if (counts[static_cast<std::size_t>(c)] < k)
        data["per_class"].fail(std::to_string(k) + " samples per class, but class " + std::to_string(c) + " (" +
                               names[static_cast<std::size_t>(c)] + ") has only " +
                               std::to_string(counts[static_cast<std::size_t>(c)]) + " training samples" +
                               (fraction > 0 ? " after the val hold-out" : ""));
    Rng rng(Rng::seed_for(seed, kPerClassStream, 0));
    train_sel = split_per_class(train_sel, num_classes, rng, [&](std::int64_t, std::int64_t) { return k; }).first;
  }
  plan.train = subsetting || fraction > 0 || per_class ? subset(train, std::move(train_sel), names) : train;
  plan.classes = names;
  if (plan.train->size() == 0) data["train_split"].fail("the training split has no samples");

  const auto eval_data = plan.val ? plan.val : plan.test ? plan.test : plan.train;
  const auto sample = plan.train->get(0).input;
  plan_transforms(plan, registry, root, data, seed, sample, eval_data->size() ? eval_data->get(0).input : sample);
  plan_loaders(plan, data, seed);
  const auto& o = plan.train_options;

  // Description.
  std::ostringstream d;
  auto line = [&](const char* role, const std::shared_ptr<Dataset>& ds, const std::string& from) {
    d << role << ": ";
    if (!ds) {
      d << "none\n";
      return;
    }
    d << ds->size() << " samples (" << dataset << " " << from;
    const auto counts = class_count_line(*ds, num_classes);
    if (!counts.empty()) d << ", " << counts;
    d << ")\n";
  };
  line("train", plan.train, train_split);
  line("val", plan.val, val_source);
  line("test", plan.test, test_split);
  d << "classes (" << num_classes << "): " << join(names) << "\n";
  d << "sample " << shape_str(plan.sample_shape) << " float, batch " << o.batch_size << ", workers " << o.workers;
  plan.description = d.str();
  return plan;
}

}  // namespace graft
