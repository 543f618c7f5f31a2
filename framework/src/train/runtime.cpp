#include "graft/host/runtime.h"

#include <dlfcn.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <thread>

#include <ATen/Parallel.h>

namespace graft {

void configure_cpu(int threads) {
  at::set_num_threads(threads);
  // OpenBLAS found in the process (Debian's libblas.so.3 alternative): one thread
  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) {
    using SetThreads = void (*)(int);
    if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(1);
  }
#ifdef __GLIBC__
  // A training step frees and reallocates the same large activation and workspace buffers
  // every time. glibc's defaults hand each one back to the kernel (mmap/munmap, heap trims)
  // and fault its pages in again: on 2 cores that was 60% of the run in system time and
  // halved the throughput (fashion_mnist_cnn: 830 -> 2,060 img/s). Keep them in the heap,
  // all of them: mallopt's mmap threshold stops at 32 MiB, and buffers above it (batch 500
  // of the small CNN in evaluation) doubled an eval's time; no mmap at all (M_MMAP_MAX 0).
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
  mallopt(M_TOP_PAD, 256 * 1024 * 1024);
#endif
}

int resolve_threads(const Config& node) {
  const std::string text = node.is_null() ? "auto" : node.scalar();
  if (text == "auto") return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int n = node.as<int>();
  if (n < 1) node.fail("must be >= 1 or auto");
  return n;
}

}  // namespace graft
