// The few LibTorch calls that differ between 1.13 (Debian) and 2.x (pip PyTorch on the
// GPU machine). Everything version-dependent lives here.
#pragma once

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#define GRAFT_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace graft::compat {

/// Turns CUDA autocast on (with this dtype) or off, for the calling thread.
inline void set_cuda_autocast(bool on, c10::ScalarType dtype) {
#if GRAFT_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(at::kCUDA, on);
  at::autocast::set_autocast_dtype(at::kCUDA, dtype);
#else
  at::autocast::set_enabled(on);
  at::autocast::set_autocast_gpu_dtype(dtype);
#endif
}

inline void clear_autocast_cache() { at::autocast::clear_cache(); }

}  // namespace graft::compat
