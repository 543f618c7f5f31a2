// What the registry hands out for the plugins graft calls from many places (transforms,
// metrics, losses): the plugin's own object behind a thin wrapper, so that whatever it
// throws, wherever graft calls it (a loader's worker, training, evaluation, graft check),
// leaves as one PluginFailure naming the plugin, its library and its recipe entry.
#pragma once

#include <any>
#include <string>

#include "graft/error.h"
#include "graft/plugin.h"

namespace graft::registry {

/// `product` (a factory's result) wrapped when `kind` is transform, metric or loss; as it
/// is for every other kind.
std::any labelled(Kind kind, std::any product, const std::string& who, const SourceLoc& where);

}  // namespace graft::registry
