#include "fused_sgd.h"

#include <ATen/Parallel.h>

namespace graft::kernels {

namespace {
// One pass per chunk; the branches are loop-invariant, so each variant is a plain loop the
// compiler vectorizes.
template <bool Decay, bool Momentum, bool First, bool Nesterov>
void chunk(float* p, const float* g, float* buf, std::int64_t begin, std::int64_t end, const SgdStep& s) {
  const float lr = s.lr, wd = s.weight_decay, m = s.momentum, keep = 1.0f - s.dampening;
  for (std::int64_t i = begin; i < end; ++i) {
    float d = Decay ? g[i] + wd * p[i] : g[i];
    if (Momentum) {
      const float b = First ? d : buf[i] * m + keep * d;
      buf[i] = b;
      d = Nesterov ? d + m * b : b;
    }
    p[i] = p[i] + -lr * d;
  }
}

using Chunk = void (*)(float*, const float*, float*, std::int64_t, std::int64_t, const SgdStep&);

template <bool Decay>
Chunk pick(bool momentum, bool first, bool nesterov) {
  if (!momentum) return chunk<Decay, false, false, false>;
  if (first) return nesterov ? chunk<Decay, true, true, true> : chunk<Decay, true, true, false>;
  return nesterov ? chunk<Decay, true, false, true> : chunk<Decay, true, false, false>;
}
}  // namespace

void sgd_update(float* p, const float* g, float* buf, std::int64_t n, const SgdStep& s) {
  const bool momentum = buf != nullptr;
  const Chunk f = s.weight_decay != 0 ? pick<true>(momentum, s.first, s.nesterov) : pick<false>(momentum, s.first, s.nesterov);
  at::parallel_for(0, n, 32768, [&](std::int64_t begin, std::int64_t end) { f(p, g, buf, begin, end, s); });
}

}  // namespace graft::kernels
