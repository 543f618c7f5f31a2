// Process-wide settings for running models on the CPU (host side). The library never
// applies them by itself: they are the one explicit call a program that embeds graft
// makes, before it trains or evaluates; the `graft` command makes it for train and eval.
#pragma once

#include "graft/config.h"

namespace graft {

/// The CPU settings graft's trainer is tuned for (README, "Benchmarks"):
/// - LibTorch's intra-op threads = `threads`;
/// - OpenBLAS held to one thread, unless OPENBLAS_NUM_THREADS is set: LibTorch splits work
///   over its own OpenMP threads already, and the pthread OpenBLAS's pool beside them made a
///   small CNN's step 1.5x slower on 2 cores;
/// - glibc keeping freed memory in the heap, large buffers included (no mmap): a step frees
///   and reallocates the same buffers.
void configure_cpu(int threads);

/// The thread count of a recipe's `trainer.threads` node: a number >= 1, or `auto` (or no
/// value) for the machine's hardware threads. A bad value fails with its file:line:col.
int resolve_threads(const Config& node);

}  // namespace graft
