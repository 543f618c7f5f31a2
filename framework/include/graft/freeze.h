// Freezing policies. A policy is a pure function of (epoch, step): given the model's
// parameter and module names it says what is frozen now. A resumed run asks again before
// it loads optimizer state, so the optimizer's groups line up with the checkpoint's.
//
//   class FreezeAllExcept : public graft::Freezer {
//     void apply(const graft::ModelInfo& m, std::int64_t, std::int64_t, graft::FreezeState& s) const override {
//       for (const auto& p : m.parameters) if (!matches(p)) s.frozen.insert(p);
//     }
//   };
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "graft/plugin.h"

namespace graft {

/// What a policy sees of the model.
struct ModelInfo {
  std::vector<std::string> parameters;                         ///< in state-dict order
  std::vector<std::pair<std::string, std::string>> modules;    ///< (path, type name), tree order
  std::vector<std::string> stages;  ///< top-level stages that hold parameters, in forward order
};

/// What is frozen at one point of training; policies add to it.
struct FreezeState {
  std::set<std::string> frozen;         ///< parameters: no gradient, no optimizer state
  std::set<std::string> eval_modules;   ///< module paths kept in eval mode (BatchNorm statistics)
  std::map<std::string, double> lr;     ///< learning rate for parameters a schedule unfroze
  std::map<std::string, std::int64_t> unfrozen_at;  ///< parameter -> epoch a schedule unfroze it
};

class Freezer {
 public:
  virtual ~Freezer() = default;
  virtual void apply(const ModelInfo& model, std::int64_t epoch, std::int64_t step, FreezeState& state) const = 0;
};

template <> struct ProductOf<Kind::freezer> { using type = std::shared_ptr<Freezer>; };

}  // namespace graft
