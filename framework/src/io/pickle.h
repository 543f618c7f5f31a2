// A data-only pickle reader and writer for PyTorch files (internal to graft_core).
//
// The reader builds a tree of PValues and never executes anything: GLOBAL opcodes are
// checked against an allowlist (tensor rebuilding, storages, OrderedDict) the moment
// they are read, and REDUCE is interpreted only for those few callables. Tensors stay
// references to storages (key, dtype, offset, sizes, strides) until the caller has the
// storage bytes, because the legacy format stores them after the pickle.
#pragma once

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace graft::pickle {

struct PValue;
using P = std::shared_ptr<PValue>;

struct PValue {
  enum class Type { none, boolean, integer, bigint, real, string, bytes, list, tuple, dict, global, storage, tensor };
  Type type = Type::none;
  bool b = false;
  std::int64_t i = 0;
  double d = 0;
  std::string s;               ///< string, bytes, bigint (little-endian two's complement), global "module.name"
  std::vector<P> items;        ///< list, tuple
  std::vector<std::pair<P, P>> entries;  ///< dict, in insertion order

  // storage
  std::string storage_key;
  c10::ScalarType dtype = c10::ScalarType::Float;
  std::int64_t numel = 0;         ///< elements in the storage (the root storage for legacy views)
  std::int64_t view_offset = 0;   ///< legacy storage views: element offset into the root storage
  std::string location;

  // tensor
  P storage;
  std::int64_t offset = 0;
  std::vector<std::int64_t> sizes, strides;
  bool requires_grad = false;

  static P make(Type t) {
    auto p = std::make_shared<PValue>();
    p->type = t;
    return p;
  }
};

/// Reads one pickle from `data` starting at `pos` (advanced past STOP).
/// `persistent_load` turns a BINPERSID/PERSID argument into a value (a storage).
/// Errors are thrown as std::runtime_error with a message meant for the user.
P unpickle(const std::uint8_t* data, std::size_t size, std::size_t& pos,
           const std::function<P(const P&)>& persistent_load);

/// The dtype of a storage class name ("FloatStorage"); false when unknown.
bool storage_dtype(const std::string& name, c10::ScalarType& out);
/// The storage class name of a dtype ("FloatStorage").
std::string storage_name(c10::ScalarType dtype);

/// Writes protocol-2 pickles with only the opcodes and globals that Python's
/// torch.load(weights_only=True) accepts.
class Pickler {
 public:
  Pickler();
  void none();
  void boolean(bool v);
  void integer(std::int64_t v);
  void real(double v);
  void string(const std::string& v);
  void begin_list();
  void end_list();  ///< items written since begin_list() are appended
  void begin_tuple();
  void end_tuple();
  void begin_dict();
  void end_dict();  ///< key, value pairs written since begin_dict() are set
  /// _rebuild_tensor_v2(storage(key, dtype, numel), offset, sizes, strides, requires_grad, OrderedDict())
  void tensor(const std::string& storage_key, c10::ScalarType dtype, std::int64_t storage_numel, std::int64_t offset,
              const std::vector<std::int64_t>& sizes, const std::vector<std::int64_t>& strides, bool requires_grad);
  /// Ends the pickle (STOP) and returns its bytes.
  std::string finish();

 private:
  void global(const std::string& module, const std::string& name);
  void op(std::uint8_t code) { out_.push_back(static_cast<char>(code)); }
  void u32(std::uint32_t v);
  std::string out_;
  std::vector<std::size_t> marks_;
};

}  // namespace graft::pickle
