// graft::read_torch_file on arbitrary bytes: the zip format (central directory, records,
// CRC-32, deflated records) and the legacy format, both through the data-only unpickler.
// Every tensor that comes back must lie inside its storage, and every storage byte must be
// readable (ASan checks the reads below).
#include <ATen/core/ivalue.h>
#include <ATen/core/Dict.h>
#include <ATen/core/List.h>

#include <graft/host/serialize.h>

#include "fuzz_util.h"

namespace {

volatile std::uint8_t sink;

void check_tensor(const at::Tensor& t) {
  const auto& storage = t.storage();
  const auto* bytes = static_cast<const std::uint8_t*>(storage.data());
  std::uint8_t acc = 0;
  for (std::size_t k = 0; k < storage.nbytes(); ++k) acc ^= bytes[k];
  sink = acc;
  if (t.numel() == 0) return;
  std::int64_t last = t.storage_offset(), step = 0, end = 0;
  bool overflow = false;
  for (std::int64_t d = 0; d < t.dim(); ++d)
    overflow = __builtin_mul_overflow(t.size(d) - 1, t.stride(d), &step) || __builtin_add_overflow(last, step, &last) || overflow;
  overflow = __builtin_mul_overflow(last + 1, static_cast<std::int64_t>(t.element_size()), &end) || overflow;
  if (overflow || t.storage_offset() < 0 || end > static_cast<std::int64_t>(storage.nbytes())) {
    std::fprintf(stderr, "fuzz_torch_file: a tensor reaches past its storage\n");
    std::abort();
  }
}

void walk(const c10::IValue& v, int depth) {
  if (depth > 10000) return;
  if (v.isTensor()) {
    check_tensor(v.toTensor());
  } else if (v.isList()) {
    for (const auto& i : v.toListRef()) walk(i, depth + 1);
  } else if (v.isTuple()) {
    for (const auto& i : v.toTupleRef().elements()) walk(i, depth + 1);
  } else if (v.isGenericDict()) {
    for (const auto& e : v.toGenericDict()) {
      walk(e.key(), depth + 1);
      walk(e.value(), depth + 1);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = graft::fuzz::write_file("input.pth", data, size);
  graft::fuzz::expect_clean([&] { walk(graft::read_torch_file(path), 0); });
  return 0;
}
