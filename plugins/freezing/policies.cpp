// Freezing policies: patterns, all-but patterns, the first N stages (MMPretrain's
// frozen_stages), BatchNorm statistics, and gradual unfreezing on a schedule (Lightning's
// BackboneFinetuning). Each is a pure function of (epoch, step).
#include <graft/freeze.h>
#include <graft/glob.h>

namespace {

bool any_match(const std::vector<std::string>& globs, const std::string& name) {
  for (const auto& g : globs)
    if (graft::glob_match(g, name)) return true;
  return false;
}

bool under(const std::string& name, const std::string& path) {
  return path.empty() || name == path || name.rfind(path + ".", 0) == 0;
}

bool is_norm(const std::string& type) {
  return type == "BatchNorm1d" || type == "BatchNorm2d" || type == "BatchNorm3d" || type == "SyncBatchNorm";
}

struct Freeze : graft::Freezer {
  std::vector<std::string> globs;
  bool except = false;
  void apply(const graft::ModelInfo& m, std::int64_t, std::int64_t, graft::FreezeState& s) const override {
    for (const auto& p : m.parameters)
      if (any_match(globs, p) != except) s.frozen.insert(p);
  }
};

std::shared_ptr<graft::Freezer> make_freeze(const graft::Config& c) {
  auto f = std::make_shared<Freeze>();
  f->globs = c.get<std::vector<std::string>>("patterns");
  return f;
}
std::shared_ptr<graft::Freezer> make_freeze_all_except(const graft::Config& c) {
  auto f = std::make_shared<Freeze>();
  f->globs = c.get<std::vector<std::string>>("patterns");
  f->except = true;
  return f;
}

struct FrozenStages : graft::Freezer {
  std::int64_t n = 0;
  bool norm_eval = true;
  void apply(const graft::ModelInfo& m, std::int64_t, std::int64_t, graft::FreezeState& s) const override {
    if (static_cast<std::size_t>(n) > m.stages.size())
      throw graft::Error::usage("frozen_stages: n = " + std::to_string(n) + " but the model has only " +
                                std::to_string(m.stages.size()) + " stages with parameters");
    for (std::int64_t k = 0; k < n; ++k) {
      const auto& stage = m.stages[static_cast<std::size_t>(k)];
      for (const auto& p : m.parameters)
        if (under(p, stage)) s.frozen.insert(p);
      if (norm_eval)
        for (const auto& [path, type] : m.modules)
          if (is_norm(type) && under(path, stage)) s.eval_modules.insert(path);
    }
  }
};

std::shared_ptr<graft::Freezer> make_frozen_stages(const graft::Config& c) {
  auto f = std::make_shared<FrozenStages>();
  f->n = c.get<std::int64_t>("n");
  f->norm_eval = c.get<bool>("norm_eval");
  return f;
}

struct FreezeBatchNorm : graft::Freezer {
  bool affine = false;
  std::vector<std::string> globs;
  void apply(const graft::ModelInfo& m, std::int64_t, std::int64_t, graft::FreezeState& s) const override {
    for (const auto& [path, type] : m.modules) {
      if (!is_norm(type) || (!globs.empty() && !any_match(globs, path))) continue;
      s.eval_modules.insert(path);
      if (affine)
        for (const auto& p : m.parameters)
          if (p == path + ".weight" || p == path + ".bias") s.frozen.insert(p);
    }
  }
};

std::shared_ptr<graft::Freezer> make_freeze_bn(const graft::Config& c) {
  auto f = std::make_shared<FreezeBatchNorm>();
  f->affine = c.get<bool>("affine");
  f->globs = c.get<std::vector<std::string>>("modules");
  return f;
}

// Frozen at first; each milestone unfreezes more, optionally with its own learning rate.
struct GradualUnfreeze : graft::Freezer {
  std::vector<std::string> frozen;
  struct Milestone {
    std::int64_t epoch;
    std::vector<std::string> unfreeze;
    double lr;  // < 0: the group rules decide
  };
  std::vector<Milestone> milestones;
  void apply(const graft::ModelInfo& m, std::int64_t epoch, std::int64_t, graft::FreezeState& s) const override {
    for (const auto& p : m.parameters) {
      if (!any_match(frozen, p)) continue;
      const Milestone* released = nullptr;
      for (const auto& ms : milestones)
        if (ms.epoch <= epoch && any_match(ms.unfreeze, p)) {
          released = &ms;
          break;
        }
      if (!released) {
        s.frozen.insert(p);
        continue;
      }
      s.unfrozen_at[p] = released->epoch;
      if (released->lr >= 0) s.lr[p] = released->lr;
    }
  }
};

std::shared_ptr<graft::Freezer> make_gradual_unfreeze(const graft::Config& c) {
  auto f = std::make_shared<GradualUnfreeze>();
  f->frozen = c.get<std::vector<std::string>>("frozen");
  const graft::Config list = c["milestones"];
  if (!list.is_list() || list.size() == 0) list.fail("expected a list of {epoch: E, unfreeze: [patterns], lr: LR}");
  for (const auto& item : list.items()) {
    const auto ms = item.validated({graft::KeySpec::required_key("epoch", graft::ValueType::integer, "epoch").min(0),
                                    graft::KeySpec::required_key("unfreeze", graft::ValueType::string_list, "patterns"),
                                    graft::KeySpec("lr", -1.0, "learning rate for what is unfrozen")},
                                   "a milestone");
    f->milestones.push_back({ms.get<std::int64_t>("epoch"), ms.get<std::vector<std::string>>("unfreeze"), ms.get<double>("lr")});
  }
  std::stable_sort(f->milestones.begin(), f->milestones.end(),
                   [](const GradualUnfreeze::Milestone& a, const GradualUnfreeze::Milestone& b) { return a.epoch < b.epoch; });
  return f;
}

}  // namespace

GRAFT_PLUGIN(freezer, "freeze", make_freeze, "freeze the parameters matching glob patterns",
             graft::KeySpec::required_key("patterns", graft::ValueType::string_list, "globs on parameter names").non_empty());
GRAFT_PLUGIN(freezer, "freeze_all_except", make_freeze_all_except,
             "freeze every parameter except those matching patterns (seed 000: all but fc)",
             graft::KeySpec::required_key("patterns", graft::ValueType::string_list, "globs of what stays trainable").non_empty());
GRAFT_PLUGIN(freezer, "frozen_stages", make_frozen_stages,
             "freeze the first N top-level stages that hold parameters (MMPretrain's frozen_stages)",
             graft::KeySpec::required_key("n", graft::ValueType::integer, "how many stages").min(0),
             graft::KeySpec("norm_eval", true, "keep their BatchNorm statistics fixed too"));
GRAFT_PLUGIN(freezer, "freeze_bn", make_freeze_bn, "BatchNorm in eval mode (running statistics fixed)",
             graft::KeySpec("affine", false, "also freeze BatchNorm weight and bias"),
             graft::KeySpec("modules", std::vector<std::string>{}, "globs of module paths (default: all BatchNorm)"));
GRAFT_PLUGIN(freezer, "gradual_unfreeze", make_gradual_unfreeze,
             "frozen at first, unfrozen by milestones (Lightning's BackboneFinetuning)",
             graft::KeySpec("frozen", std::vector<std::string>{"*"}, "globs frozen at epoch 0").non_empty(),
             graft::KeySpec::required_key("milestones", graft::ValueType::section, "[{epoch, unfreeze: [globs], lr}]"));
