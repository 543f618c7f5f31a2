#include <cstring>
#include <stdexcept>

#include "io/pickle.h"

namespace graft::pickle {

Pickler::Pickler() {
  op(0x80);  // PROTO 2, as torch.save
  op(2);
}

void Pickler::u32(std::uint32_t v) {
  char b[4];
  std::memcpy(b, &v, 4);  // little-endian host (checked when files are read and written)
  out_.append(b, 4);
}

void Pickler::none() { op('N'); }
void Pickler::boolean(bool v) { op(v ? 0x88 : 0x89); }

void Pickler::integer(std::int64_t v) {
  if (v >= 0 && v < 256) {
    op('K');
    op(static_cast<std::uint8_t>(v));
  } else if (v >= 0 && v < 65536) {
    op('M');
    op(static_cast<std::uint8_t>(v & 0xff));
    op(static_cast<std::uint8_t>(v >> 8));
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    op('J');
    u32(static_cast<std::uint32_t>(static_cast<std::int32_t>(v)));
  } else {
    op(0x8a);  // LONG1, 8 bytes two's complement
    op(8);
    char b[8];
    std::memcpy(b, &v, 8);
    out_.append(b, 8);
  }
}

void Pickler::real(double v) {
  op('G');
  std::uint64_t u;
  std::memcpy(&u, &v, 8);
  for (int k = 7; k >= 0; --k) op(static_cast<std::uint8_t>((u >> (8 * k)) & 0xff));
}

void Pickler::string(const std::string& v) {
  op('X');
  u32(static_cast<std::uint32_t>(v.size()));
  out_ += v;
}

void Pickler::global(const std::string& module, const std::string& name) {
  op('c');
  out_ += module + "\n" + name + "\n";
}

void Pickler::begin_list() {
  op(']');
  op('(');
}
void Pickler::end_list() { op('e'); }
void Pickler::begin_tuple() { op('('); }
void Pickler::end_tuple() { op('t'); }
void Pickler::begin_dict() {
  op('}');
  op('(');
}
void Pickler::end_dict() { op('u'); }

void Pickler::tensor(const std::string& storage_key, c10::ScalarType dtype, std::int64_t storage_numel,
                     std::int64_t offset, const std::vector<std::int64_t>& sizes,
                     const std::vector<std::int64_t>& strides, bool requires_grad) {
  global("torch._utils", "_rebuild_tensor_v2");
  begin_tuple();
  // persistent id: ('storage', torch.<Type>Storage, key, 'cpu', numel)
  begin_tuple();
  string("storage");
  global("torch", storage_name(dtype));
  string(storage_key);
  string("cpu");
  integer(storage_numel);
  end_tuple();
  op('Q');  // BINPERSID
  integer(offset);
  begin_tuple();
  for (auto s : sizes) integer(s);
  end_tuple();
  begin_tuple();
  for (auto s : strides) integer(s);
  end_tuple();
  boolean(requires_grad);
  global("collections", "OrderedDict");  // backward hooks: always empty
  op(')');
  op('R');
  end_tuple();
  op('R');
}

std::string Pickler::finish() {
  op('.');
  return std::move(out_);
}

}  // namespace graft::pickle
