// The recipe's `trainer:` section, parsed and checked once: the rest of the trainer reads
// these fields and never the YAML.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "graft/config.h"
#include "graft/host/recipe.h"

namespace graft::train {

struct Devices {
  c10::Device main = c10::kCPU;
  std::vector<c10::Device> all;  ///< more than one: DataParallel
};

struct Amp {
  bool on = false;
  c10::ScalarType dtype = c10::kFloat;
  bool scaling = false;  ///< fp16: dynamic loss scaling
};

struct Settings {
  Config node;  ///< the validated section, for error locations
  std::int64_t epochs = 10;
  std::int64_t max_steps = 0;  ///< 0: no limit
  std::int64_t val_every = 1;
  std::int64_t log_every = 50;
  std::int64_t accumulate = 1;
  std::optional<double> clip_norm, clip_value;
  Devices devices;
  int threads = 1;
  Amp amp;
  bool channels_last = false;
  std::string dist_backend = "auto";  ///< multi-process runs
  double bucket_mb = 25;
  bool test = true;
  bool stop_on_nan = true;
  std::string run_dir;

  /// Reads and checks the recipe's `trainer:` (absent: all defaults).
  static Settings parse(const Recipe& recipe);
};

}  // namespace graft::train
