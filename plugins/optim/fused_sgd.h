// The sgd plugin's fused update (fused_sgd.cpp, compiled with OpenMP: LibTorch 1.13's
// at::parallel_for is an inline `#pragma omp parallel`, serial in a file without -fopenmp).
#pragma once

#include <cstdint>

namespace graft::kernels {

struct SgdStep {
  float lr = 0, weight_decay = 0, momentum = 0, dampening = 0;
  bool nesterov = false;
  bool first = false;  ///< the momentum buffer is new: it takes the first update as it is
};

/// torch.optim.SGD's update of n contiguous float32 elements, split over LibTorch's
/// intra-op threads: d = g + wd*p; buf = m*buf + (1 - dampening)*d (buf = d when `first`);
/// d = nesterov ? d + m*buf : buf; p -= lr*d. `buf` is null without momentum.
void sgd_update(float* p, const float* g, float* buf, std::int64_t n, const SgdStep& s);

}  // namespace graft::kernels
