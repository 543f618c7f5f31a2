// Module plugins built at a place in the model: the sizes graft fills in from what flows in
// there (in_features, in_channels, ...), the shape that flows out, and the scope in which a
// container plugin (`branches`, `stages`) builds the module plugins it is made of
// (graft::build_module, graft::incoming_shape of graft/model.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graft/host/registry.h"
#include "graft/model.h"

namespace graft {

/// Module plugin keys that graft fills from the model when a recipe leaves them out (or
/// writes 0): the size of dimension 1 of what flows in.
const std::vector<std::string>& inferred_keys();

/// While alive: factories that run on this thread see `input` as graft::incoming_shape()
/// and may call graft::build_module, which creates through `registry`. Scopes nest.
class ModuleScope {
 public:
  ModuleScope(const Registry& registry, std::vector<std::int64_t> input);
  ~ModuleScope();
  ModuleScope(const ModuleScope&) = delete;
  ModuleScope& operator=(const ModuleScope&) = delete;

  const Registry& registry;
  const std::vector<std::int64_t> input;

 private:
  const ModuleScope* outer_;
};

/// Creates the module plugin `spec` for a place where `input` (batch first; empty when not
/// known) flows in: the inferred keys it declares and `spec` leaves out are filled from
/// input[1]. With `probe`, one forward of zeros of that shape (eval mode, no gradients)
/// gives its output shape, and a module that does not run on it is an error at `spec`.
PlacedModule build_module_at(const Registry& registry, const Config& spec, const std::vector<std::int64_t>& input,
                             bool probe);

}  // namespace graft
