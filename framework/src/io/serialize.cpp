#include "graft/host/serialize.h"

#include <ATen/core/Dict.h>
#include <ATen/core/List.h>
#include <ATen/Parallel.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/types.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <set>

#include "graft/error.h"
#include "io/pickle.h"
#include "io/zip_index.h"

namespace fs = std::filesystem;

namespace graft {

using pickle::P;
using pickle::PValue;
using T = PValue::Type;

namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error::runtime(path + ": " + what);
}

// ---- reading ---------------------------------------------------------------------------

P make_storage(const P& pid, bool legacy) {
  if (pid->type != T::tuple || pid->items.empty() || pid->items[0]->type != T::string)
    throw std::runtime_error("unsupported persistent id in the pickle");
  const auto& a = pid->items;
  if (a[0]->s == "module") throw std::runtime_error("holds a pickled Python module (source code); save `model.state_dict()` instead");
  if (a[0]->s != "storage" || a.size() < 5) throw std::runtime_error("unsupported persistent id '" + a[0]->s + "'");
  if (a[1]->type != T::global) throw std::runtime_error("storage without a storage type");
  auto s = PValue::make(T::storage);
  const std::string type = a[1]->s.substr(a[1]->s.rfind('.') + 1);
  if (!pickle::storage_dtype(type, s->dtype)) throw std::runtime_error("unsupported storage type " + a[1]->s);
  if (a[2]->type != T::string || a[4]->type != T::integer) throw std::runtime_error("malformed storage id");
  s->storage_key = a[2]->s;
  s->location = a[3]->s;
  s->numel = a[4]->i;
  if (legacy && a.size() > 5 && a[5]->type == T::tuple && a[5]->items.size() == 3) {
    // a view of the root storage: (view_key, offset, view_size), offset in elements
    s->view_offset = a[5]->items[1]->i;
  }
  return s;
}

// Every tensor of the tree, so storages can be checked and materialised.
void collect_tensors(const P& v, std::vector<P>& out) {
  if (v->type == T::tensor) out.push_back(v);
  for (const auto& i : v->items) collect_tensors(i, out);
  for (const auto& e : v->entries) {
    collect_tensors(e.first, out);
    collect_tensors(e.second, out);
  }
}

using Storages = std::map<std::string, torch::Tensor>;  // key -> 1-D tensor of its dtype

torch::Tensor materialise(const PValue& t, const Storages& storages) {
  const auto& s = *t.storage;
  const auto it = storages.find(s.storage_key);
  if (it == storages.end()) throw std::runtime_error("storage '" + s.storage_key + "' is missing");
  const torch::Tensor& base = it->second;
  if (base.scalar_type() != s.dtype) throw std::runtime_error("storage '" + s.storage_key + "' is used with two dtypes");
  // The file's numbers are arbitrary: every step is checked for overflow.
  const auto past_end = [&] {
    return std::runtime_error("a tensor reaches past the end of its storage '" + s.storage_key + "' (corrupt file?)");
  };
  std::int64_t offset = 0, last = 0, numel = 1, step = 0;
  if (__builtin_add_overflow(t.offset, s.view_offset, &offset) || offset < 0) throw past_end();
  last = offset;
  bool empty = false;
  for (std::size_t k = 0; k < t.sizes.size(); ++k) {
    if (t.sizes[k] < 0 || t.strides[k] < 0) throw std::runtime_error("negative tensor size or stride");
    if (__builtin_mul_overflow(numel, t.sizes[k], &numel))
      throw std::runtime_error("a tensor has more elements than 64 bits count (corrupt file?)");
    if (t.sizes[k] == 0) empty = true;
    else if (__builtin_mul_overflow(t.sizes[k] - 1, t.strides[k], &step) || __builtin_add_overflow(last, step, &last))
      throw past_end();
  }
  if (!empty && last >= base.numel()) throw past_end();
  auto out = base.as_strided(t.sizes, t.strides, offset);
  if (t.requires_grad && out.is_floating_point()) out.set_requires_grad(true);
  return out;
}

c10::IValue to_ivalue(const P& v, const Storages& storages) {
  switch (v->type) {
    case T::none: return c10::IValue();
    case T::boolean: return c10::IValue(v->b);
    case T::integer: return c10::IValue(v->i);
    case T::real: return c10::IValue(v->d);
    case T::string:
    case T::bytes: return c10::IValue(v->s);
    case T::bigint: throw std::runtime_error("an integer does not fit in 64 bits");
    case T::global: throw std::runtime_error("a bare Python global (" + v->s + ") is not data");
    case T::storage: throw std::runtime_error("a bare storage is not supported; save tensors");
    case T::tensor: return materialise(*v, storages);
    case T::list: {
      c10::impl::GenericList list(c10::AnyType::get());
      for (const auto& i : v->items) list.push_back(to_ivalue(i, storages));
      return list;
    }
    case T::tuple: {
      std::vector<c10::IValue> items;
      for (const auto& i : v->items) items.push_back(to_ivalue(i, storages));
      return c10::ivalue::Tuple::create(std::move(items));
    }
    case T::dict: {
      bool all_str = true, all_int = true;
      for (const auto& e : v->entries) {
        all_str = all_str && e.first->type == T::string;
        all_int = all_int && e.first->type == T::integer;
      }
      if (!all_str && !all_int && !v->entries.empty())
        throw std::runtime_error("a dict has keys that are neither all strings nor all integers");
      c10::impl::GenericDict dict(all_str ? c10::StringType::get() : c10::TypePtr(c10::IntType::get()),
                                  c10::AnyType::get());
      for (const auto& e : v->entries) dict.insert_or_assign(to_ivalue(e.first, storages), to_ivalue(e.second, storages));
      return dict;
    }
  }
  return {};
}

// The bytes a storage needs; throws when the record holds fewer.
std::int64_t storage_bytes(std::uint64_t nbytes, const pickle::PValue& s) {
  std::int64_t needed = 0;
  if (s.numel < 0 || __builtin_mul_overflow(s.numel, static_cast<std::int64_t>(c10::elementSize(s.dtype)), &needed) ||
      nbytes < static_cast<std::uint64_t>(needed))
    throw std::runtime_error("storage '" + s.storage_key + "' holds " + std::to_string(nbytes) + " bytes, " +
                             std::to_string(needed) + " expected (truncated or corrupt file)");
  return needed;
}

torch::Tensor storage_from_bytes(const void* data, std::size_t nbytes, const pickle::PValue& s) {
  const std::int64_t needed = storage_bytes(nbytes, s);
  auto t = torch::empty({s.numel}, torch::TensorOptions().dtype(s.dtype));
  if (needed > 0) std::memcpy(t.data_ptr(), data, static_cast<std::size_t>(needed));
  return t;
}

// A whole file in one buffer, no per-record allocation. Large files get 2 MiB pages (fewer
// page faults). The storages of a zip file are tensors on this buffer; it is freed when the
// last of them is. `checked`: the stored records whose CRC-32 was checked as the file was read.
struct FileImage {
  std::uint8_t* data = nullptr;
  std::uint64_t size = 0;
  std::set<std::string> checked;
  FileImage(const FileImage&) = delete;
  FileImage& operator=(const FileImage&) = delete;
  FileImage() = default;
  ~FileImage() { std::free(data); }
};

// Bytes [begin, end) of the file into the same place of the buffer.
void read_range(int fd, std::uint8_t* data, std::uint64_t begin, std::uint64_t end) {
  for (std::uint64_t done = begin; done < end;) {
    const ssize_t k = ::pread(fd, data + done, std::min<std::uint64_t>(end - done, 1u << 30), static_cast<off_t>(done));
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) throw std::runtime_error(k == 0 ? std::string("shrank while being read") : std::string("cannot be read: ") + std::strerror(errno));
    done += static_cast<std::uint64_t>(k);
  }
}

// A zip file read and checked in one pass: its directory (from the file's end) and its
// records' local headers first, then the whole file in pieces that the process's threads
// share, each piece of a stored record CRC-checked right after it is read, while it is in
// the cache. Records found right go into image.checked; anything this plan cannot make out
// (a damaged directory or header, overlapping records) is left to read_zip, which checks
// those records as they are read, with the same errors as ever: the buffer always ends up
// holding the whole file.
void read_zip_checked(int fd, FileImage& image, int threads) {
  std::uint8_t* data = image.data;
  const std::uint64_t size = image.size;
  std::vector<zip::Span> spans;
  std::vector<std::string> names;
  std::vector<std::uint32_t> expected;
  try {
    // the end-of-directory record, a zip64 locator and record, and (most often) the directory
    const std::uint64_t tail = size - std::min<std::uint64_t>(size, std::uint64_t{1} << 17);
    read_range(fd, data, tail, size);
    const auto cd = zip::directory_offset(data, size);
    if (cd < tail) read_range(fd, data, cd, tail);
    const auto index = zip::read_directory(data, size);
    for (const auto& [name, e] : index) {
      if (e.method != 0 || e.compressed_size != e.size || e.local_offset > size || size - e.local_offset < 30) continue;
      read_range(fd, data, e.local_offset, e.local_offset + 30);
      const auto at = zip::data_offset(data, size, e);
      spans.push_back({at, at + e.size});
      names.push_back(name);
      expected.push_back(e.crc32);
    }
  } catch (const std::runtime_error&) {
    spans.clear();
  }
  std::vector<std::size_t> order(spans.size());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return spans[a].begin < spans[b].begin; });
  for (std::size_t k = 1; k < order.size(); ++k)
    if (spans[order[k]].begin < spans[order[k - 1]].end) {  // a damaged file: no plan, read it whole
      spans.clear();
      order.clear();
      break;
    }
  // the records, and the bytes between them (headers, the directory): all of the file
  std::vector<zip::Span> cover;
  std::uint64_t at = 0;
  for (const auto k : order) {
    if (at < spans[k].begin) cover.push_back({at, spans[k].begin});
    cover.push_back(spans[k]);
    at = spans[k].end;
  }
  if (at < size) cover.push_back({at, size});
  const auto crcs = zip::crc32(data, cover, threads, [&](const zip::Span& piece) { read_range(fd, data, piece.begin, piece.end); });
  std::size_t c = 0;
  for (const auto k : order) {
    while (cover[c].begin != spans[k].begin || cover[c].end != spans[k].end) ++c;
    if (crcs[c] == expected[k]) image.checked.insert(names[k]);
  }
}

std::shared_ptr<FileImage> read_image(const std::string& path, int threads) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(std::string("cannot be opened: ") + std::strerror(errno));
  auto image = std::make_shared<FileImage>();
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size < 0) {
    const int e = errno;
    ::close(fd);
    throw std::runtime_error(std::string("cannot be read: ") + std::strerror(e));
  }
  image->size = static_cast<std::uint64_t>(st.st_size);
  constexpr std::size_t huge = std::size_t(2) << 20;
  const std::size_t align = image->size >= 4 * huge ? huge : 64;
  const std::size_t bytes = (std::max<std::uint64_t>(image->size, 1) + align - 1) / align * align;
  image->data = static_cast<std::uint8_t*>(std::aligned_alloc(align, bytes));
  if (image->data == nullptr) {
    ::close(fd);
    throw std::runtime_error("cannot be read: out of memory for " + std::to_string(image->size) + " bytes");
  }
  if (align == huge) ::madvise(image->data, bytes, MADV_HUGEPAGE);
  try {
    read_range(fd, image->data, 0, std::min<std::uint64_t>(image->size, 4));
    if (image->size >= 4 && std::memcmp(image->data, "PK\x03\x04", 4) == 0) read_zip_checked(fd, *image, threads);
    else read_range(fd, image->data, 0, image->size);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return image;
}

// A 1-D tensor of the storage's dtype on bytes of the file image (no copy), or a copy when
// the bytes are not 64-byte aligned (torch.save aligns its records; other zip writers may not).
torch::Tensor storage_on_image(const std::shared_ptr<FileImage>& image, const std::uint8_t* bytes, std::uint64_t nbytes,
                               const pickle::PValue& s) {
  if (reinterpret_cast<std::uintptr_t>(bytes) % 64 != 0) return storage_from_bytes(bytes, nbytes, s);
  const std::int64_t needed = storage_bytes(nbytes, s);
  // The storage holds a reference to the image; its deleter drops it.
  auto* owner = new std::shared_ptr<FileImage>(image);
  c10::DataPtr ptr(const_cast<std::uint8_t*>(bytes), owner,
                   [](void* ctx) { delete static_cast<std::shared_ptr<FileImage>*>(ctx); }, c10::Device(c10::kCPU));
  c10::Storage storage(c10::Storage::use_byte_size_t(), needed, std::move(ptr), /*allocator=*/nullptr,
                       /*resizable=*/false);
  return torch::empty({0}, torch::TensorOptions().dtype(s.dtype)).set_(storage, 0, {s.numel}, {1});
}

c10::IValue read_zip(const std::shared_ptr<FileImage>& image) {
  const std::uint8_t* file = image->data;
  const auto index = zip::read_directory(file, image->size);
  // The archive's top folder (PyTorch's reader takes the first entry's): the one holding data.pkl.
  std::string prefix;
  for (const auto& [name, entry] : index) {
    const auto slash = name.find('/');
    if (slash != std::string::npos && name.compare(slash, std::string::npos, "/data.pkl") == 0) {
      prefix = name.substr(0, slash + 1);
      break;
    }
  }
  if (prefix.empty()) throw std::runtime_error("has no data.pkl (a TorchScript archive? graft reads torch.save files)");
  // A record's bytes, CRC-checked (PyTorch's reader checks none): in the image (most
  // records were checked as the file was read), or (deflated) inflated into `copy`.
  struct Bytes {
    const std::uint8_t* data;
    std::uint64_t size;
    std::vector<std::uint8_t> copy;
    bool inflated = false;
  };
  auto record = [&](const std::string& name) {
    const auto it = index.find(prefix + name);
    if (it == index.end()) throw std::runtime_error("record " + name + " is missing");
    const zip::Entry& e = it->second;
    Bytes b{nullptr, e.size, {}};
    if (e.method == 0) {
      if (e.compressed_size != e.size) throw std::runtime_error("record " + name + " has two sizes (corrupt file)");
      b.data = file + zip::data_offset(file, image->size, e);
    } else {
      b.copy = zip::inflate(file, image->size, e);
      b.data = b.copy.data();
      b.inflated = true;
    }
    if (!(e.method == 0 && image->checked.count(prefix + name)) && zip::crc32(b.data, b.size, at::get_num_threads()) != e.crc32)
      throw std::runtime_error("record " + name + " fails its CRC-32 check (corrupt file)");
    return b;
  };
  if (index.count(prefix + "byteorder")) {
    const Bytes b = record("byteorder");
    if (std::string(reinterpret_cast<const char*>(b.data), b.size) != "little")
      throw std::runtime_error("was written on a big-endian machine, which graft does not read");
  }
  const Bytes pkl = record("data.pkl");
  std::size_t pos = 0;
  const P root = pickle::unpickle(pkl.data, pkl.size, pos, [](const P& pid) { return make_storage(pid, false); });
  std::vector<P> tensors;
  collect_tensors(root, tensors);
  Storages storages;
  for (const auto& t : tensors) {
    const auto& s = *t->storage;
    if (storages.count(s.storage_key)) continue;
    const Bytes b = record("data/" + s.storage_key);
    storages[s.storage_key] = b.inflated ? storage_from_bytes(b.data, b.size, s) : storage_on_image(image, b.data, b.size, s);
  }
  return to_ivalue(root, storages);
}

c10::IValue read_legacy(const FileImage& image) {
  const std::uint8_t* data = image.data;
  const std::uint64_t size = image.size;
  std::size_t pos = 0;
  auto no_persistent = [](const P&) -> P { throw std::runtime_error("unexpected persistent id in a header"); };
  const P magic = pickle::unpickle(data, size, pos, no_persistent);
  // torch's legacy magic number 0x1950a86a20f9469cfc6c, as pickle's little-endian LONG1
  static const std::string expected("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);
  if (magic->type != T::bigint || magic->s != expected)
    throw std::runtime_error("is a pickle but not a torch.save file (no PyTorch magic number)");
  const P protocol = pickle::unpickle(data, size, pos, no_persistent);
  if (protocol->type != T::integer || protocol->i != 1001)
    throw std::runtime_error("unsupported legacy protocol version");
  const P sys_info = pickle::unpickle(data, size, pos, no_persistent);
  for (const auto& e : sys_info->entries)
    if (e.first->s == "little_endian" && e.second->type == T::boolean && !e.second->b)
      throw std::runtime_error("was written on a big-endian machine, which graft does not read");

  std::map<std::string, P> roots;  // storage key -> its (root) storage description
  const P root = pickle::unpickle(data, size, pos, [&](const P& pid) {
    P s = make_storage(pid, true);
    roots.emplace(s->storage_key, s);
    return s;
  });
  const P keys = pickle::unpickle(data, size, pos, no_persistent);
  if (keys->type != T::list) throw std::runtime_error("malformed storage key list");
  Storages storages;
  for (const auto& k : keys->items) {
    if (k->type != T::string) throw std::runtime_error("malformed storage key");
    const auto it = roots.find(k->s);
    if (it == roots.end()) throw std::runtime_error("storage '" + k->s + "' is listed but never used");
    if (pos + 8 > size) throw std::runtime_error("truncated file: storage '" + k->s + "' is missing");
    std::int64_t numel;
    std::memcpy(&numel, data + pos, 8);
    pos += 8;
    const auto elem = static_cast<std::int64_t>(c10::elementSize(it->second->dtype));
    if (numel < 0 || numel != it->second->numel || static_cast<std::uint64_t>(numel) > (size - pos) / elem)
      throw std::runtime_error("truncated or corrupt file: storage '" + k->s + "' is incomplete");
    storages[k->s] = storage_from_bytes(data + pos, static_cast<std::size_t>(numel * elem), *it->second);
    pos += static_cast<std::size_t>(numel * elem);
  }
  return to_ivalue(root, storages);
}

// ---- writing ---------------------------------------------------------------------------

struct Writer {
  pickle::Pickler pickler;
  std::vector<torch::Tensor> storages;  // CPU tensors whose storage is written as data/<index>
  std::map<std::pair<const void*, c10::ScalarType>, std::string> keys;

  void write(const c10::IValue& v) {
    if (v.isNone()) pickler.none();
    else if (v.isBool()) pickler.boolean(v.toBool());
    else if (v.isInt()) pickler.integer(v.toInt());
    else if (v.isDouble()) pickler.real(v.toDouble());
    else if (v.isString()) pickler.string(v.toStringRef());
    else if (v.isTensor()) tensor(v.toTensor());
    else if (v.isTuple()) {
      pickler.begin_tuple();
      for (const auto& i : v.toTupleRef().elements()) write(i);
      pickler.end_tuple();
    } else if (v.isList()) {
      pickler.begin_list();
      for (const auto& i : v.toListRef()) write(i);
      pickler.end_list();
    } else if (v.isGenericDict()) {
      pickler.begin_dict();
      for (const auto& e : v.toGenericDict()) {
        if (!e.key().isString() && !e.key().isInt()) throw std::runtime_error("dict keys must be strings or ints");
        write(e.key());
        write(e.value());
      }
      pickler.end_dict();
    } else {
      throw std::runtime_error("cannot save a value of type " + v.tagKind());
    }
  }

  void tensor(torch::Tensor t) {
    if (t.is_sparse() || t.is_quantized() || t.is_mkldnn()) throw std::runtime_error("only dense tensors can be saved");
    const bool requires_grad = t.requires_grad();
    t = t.detach();
    if (!t.device().is_cpu()) t = t.cpu();
    const auto& storage = t.storage();
    const std::pair<const void*, c10::ScalarType> id{storage.unsafeGetStorageImpl(), t.scalar_type()};
    auto it = keys.find(id);
    if (it == keys.end()) {
      it = keys.emplace(id, std::to_string(storages.size())).first;
      storages.push_back(t);
    }
    const auto numel = static_cast<std::int64_t>(storage.nbytes() / c10::elementSize(t.scalar_type()));
    pickler.tensor(it->second, t.scalar_type(), numel, t.storage_offset(), t.sizes().vec(), t.strides().vec(),
                   requires_grad);
  }
};

}  // namespace

c10::IValue read_torch_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) fail(path, fs::exists(path, ec) ? "is not a regular file" : "no such file");
  std::shared_ptr<FileImage> image;
  try {
    image = read_image(path, at::get_num_threads());
  } catch (const std::exception& e) {
    fail(path, e.what());
  }
  const std::uint8_t* head = image->data;
  const auto got = static_cast<int>(std::min<std::uint64_t>(image->size, 4));
  try {
    if (got >= 4 && std::memcmp(head, "PK\x03\x04", 4) == 0) return read_zip(image);
    if (got >= 2 && head[0] == 0x80) return read_legacy(*image);
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    fail(path, first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    fail(path, e.what());
  }
  if (got == 0) fail(path, "is empty");
  char hex[16];
  std::string magic;
  for (int k = 0; k < got; ++k) {
    std::snprintf(hex, sizeof hex, "%02x", head[k]);
    magic += hex;
  }
  fail(path, "is not a PyTorch file (it starts with bytes " + magic +
                 "; expected a torch.save zip archive or a legacy pickle)");
}

namespace {

// Where write_torch_file's bytes go. Every write is checked (a full disk, a size limit) and
// the first error kept: the zip writer must never see one (it would throw from its
// destructor). Large files go through an 8 MiB staging buffer written with O_DIRECT when
// the file system takes it: no copy into the page cache, the data reach the disk as they
// are written, and the final fsync has little left to do. Otherwise (small files, tmpfs, a
// file system refusing O_DIRECT at any point) the page cache, with the disk writes started
// every 8 MiB (as RocksDB's bytes_per_sync) so that the fsync waits for the tail only.
class FileSink {
 public:
  static constexpr std::size_t kChunk = std::size_t(8) << 20;
  static constexpr std::size_t kBlock = 4096;  // O_DIRECT's alignment of offsets and sizes

  FileSink(int fd, std::uint64_t expected_size) : fd_(fd) {
#ifdef O_DIRECT
    if (expected_size >= 2 * kChunk) {
      staging_ = static_cast<char*>(std::aligned_alloc(std::size_t(2) << 20, kChunk));
      if (staging_ != nullptr) {
        ::madvise(staging_, kChunk, MADV_HUGEPAGE);
        const int flags = ::fcntl(fd_, F_GETFL);
        direct_ = flags >= 0 && ::fcntl(fd_, F_SETFL, flags | O_DIRECT) == 0;
      }
    }
#endif
  }
  ~FileSink() { std::free(staging_); }
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

  int error() const { return error_; }

  std::size_t write(const void* data, std::size_t n) {
    if (!direct_) {
      put(static_cast<const char*>(data), n);
      return n;
    }
    const char* p = static_cast<const char*>(data);
    for (std::size_t left = n; left > 0 && error_ == 0;) {
      const std::size_t k = std::min(left, kChunk - used_);
      std::memcpy(staging_ + used_, p, k);
      used_ += k;
      p += k;
      left -= k;
      if (used_ == kChunk) drain(kChunk);
    }
    return n;
  }

  /// Writes what is staged, sets the file's size and syncs it; returns the first error.
  int finish() {
    if (direct_ && error_ == 0 && used_ > 0) {
      const std::size_t tail = used_;
      const std::size_t padded = (tail + kBlock - 1) / kBlock * kBlock;
      std::memset(staging_ + tail, 0, padded - tail);
      drain(padded);
      if (error_ == 0 && ::ftruncate(fd_, static_cast<off_t>(size_ - (padded - tail))) != 0) error_ = errno;
    }
    if (error_ == 0 && ::fsync(fd_) != 0) error_ = errno;
    return error_;
  }

 private:
  // O_DIRECT: the first n staged bytes, at the file's (block-aligned) end
  void drain(std::size_t n) {
    std::size_t done = 0;
    while (done < n && error_ == 0) {
      const ssize_t k = ::write(fd_, staging_ + done, n - done);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0 && errno != EINVAL) {
        error_ = errno;
        break;
      }
      if (k > 0) {
        done += static_cast<std::size_t>(k);
        size_ += static_cast<std::uint64_t>(k);
        if (done == n || static_cast<std::size_t>(k) % kBlock == 0) continue;
      }
      // refused (EINVAL: the file system's alignment) or cut short at an odd size: the
      // rest goes through the page cache, where a real error (EFBIG, ENOSPC) shows as such
      direct_ = false;
      const int flags = ::fcntl(fd_, F_GETFL);
      if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT) != 0) {
        error_ = errno;
        break;
      }
      put(staging_ + done, n - done);
      done = n;
    }
    used_ = 0;
  }

  // Through the page cache.
  void put(const char* p, std::size_t n) {
    for (std::size_t left = n; left > 0 && error_ == 0;) {
      const ssize_t k = ::write(fd_, p, std::min<std::size_t>(left, std::size_t(1) << 30));
      if (k < 0) {
        if (errno != EINTR) error_ = errno;
        continue;
      }
      p += k;
      left -= static_cast<std::size_t>(k);
      size_ += static_cast<std::uint64_t>(k);
#ifdef __linux__
      if (size_ - flushed_ >= kChunk) {  // a hint: errors come at fsync
        ::sync_file_range(fd_, static_cast<off_t>(flushed_), static_cast<off_t>(size_ - flushed_), SYNC_FILE_RANGE_WRITE);
        flushed_ = size_;
      }
#endif
    }
  }

  int fd_;
  int error_ = 0;
  bool direct_ = false;
  char* staging_ = nullptr;
  std::size_t used_ = 0;       // staged bytes
  std::uint64_t size_ = 0;     // bytes in the file
  std::uint64_t flushed_ = 0;  // bytes whose writeback was started
};

// The records of a torch.save zip (the pickle, the byte order, one per storage) through
// `writer`; the storages stop early when `ok()` turns false.
void write_records(caffe2::serialize::PyTorchStreamWriter& writer, const std::string& pkl,
                   const std::vector<torch::Tensor>& storages, const std::function<bool()>& ok) {
  writer.writeRecord("data.pkl", pkl.data(), pkl.size());
  writer.writeRecord("byteorder", "little", 6);
  for (std::size_t k = 0; k < storages.size() && ok(); ++k) {
    const auto& s = storages[k].storage();
    writer.writeRecord("data/" + std::to_string(k), s.data(), s.nbytes());
  }
  writer.writeEndOfFile();
}

Writer pickled(const c10::IValue& value, const std::string& what) {
  Writer w;
  try {
    w.write(value);
  } catch (const std::exception& e) {
    fail(what, std::string("cannot be written: ") + e.what());
  }
  return w;
}

}  // namespace

std::string torch_file_bytes(const c10::IValue& value, const std::string& what) {
  Writer w = pickled(value, what);
  const std::string pkl = w.pickler.finish();
  std::string out;
  try {
    caffe2::serialize::PyTorchStreamWriter writer([&out](const void* data, std::size_t n) {
      out.append(static_cast<const char*>(data), n);
      return n;
    });
    write_records(writer, pkl, w.storages, [] { return true; });
  } catch (const c10::Error& e) {
    fail(what, "cannot be written: " + first_line(e.what_without_backtrace()));
  }
  return out;
}

void write_torch_file(const c10::IValue& value, const std::string& path) {
  Writer w = pickled(value, path);
  const std::string pkl = w.pickler.finish();
  std::uint64_t expected = pkl.size();
  for (const auto& t : w.storages) expected += t.storage().nbytes();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, std::string("cannot be written: ") + std::strerror(errno));
  int error = 0;
  std::string zip_error;
  {
    FileSink sink(fd, expected);
    try {
      caffe2::serialize::PyTorchStreamWriter writer([&sink](const void* data, std::size_t n) { return sink.write(data, n); });
      write_records(writer, pkl, w.storages, [&sink] { return sink.error() == 0; });
    } catch (const c10::Error& e) {
      zip_error = first_line(e.what_without_backtrace());
    }
    // the data are on the disk (fsync) before this returns
    if (zip_error.empty()) error = sink.finish();
    else error = sink.error();
  }
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error != 0 || !zip_error.empty()) {
    std::error_code ignored;
    fs::remove(path, ignored);  // never leave a partial file behind
    fail(path, "cannot be written: " + (error != 0 ? std::string(std::strerror(error)) : zip_error));
  }
}

StateDict load_state_dict(const std::string& path) { return state_dict_in(read_torch_file(path), path); }

StateDict state_dict_in(const c10::IValue& value, const std::string& path) {
  auto tensor_dict = [](const c10::IValue& v, StateDict& out) {
    if (!v.isGenericDict()) return false;
    StateDict sd;
    for (const auto& e : v.toGenericDict()) {
      if (!e.key().isString() || !e.value().isTensor()) return false;
      sd.insert(e.key().toStringRef(), e.value().toTensor());
    }
    out = std::move(sd);
    return true;
  };
  StateDict sd;
  if (tensor_dict(value, sd)) return sd;
  if (value.isGenericDict()) {
    const auto dict = value.toGenericDict();
    for (const char* key : {"state_dict", "model_state_dict", "model"}) {
      const auto it = dict.find(c10::IValue(std::string(key)));
      if (it != dict.end() && tensor_dict(it->value(), sd)) return sd;
    }
    std::string keys;
    for (const auto& e : dict) keys += (keys.empty() ? "" : ", ") + (e.key().isString() ? e.key().toStringRef() : std::string("?"));
    fail(path, "holds no state dict (a dict of tensors at the top or under 'state_dict', 'model_state_dict' or "
               "'model'); its keys: " + keys);
  }
  fail(path, "holds no state dict (expected a dict of tensors, found a " + value.tagKind() + ")");
}

void save_state_dict(const StateDict& state, const std::string& path) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  for (const auto& item : state) dict.insert(item.key(), item.value());
  write_torch_file(dict, path);
}

namespace {
void collect_state(const torch::nn::Module& m, const std::string& prefix, StateDict& out) {
  for (const auto& p : m.named_parameters(/*recurse=*/false)) out.insert(prefix + p.key(), p.value());
  for (const auto& b : m.named_buffers(/*recurse=*/false)) out.insert(prefix + b.key(), b.value());
  for (const auto& c : m.named_children()) collect_state(*c.value(), prefix + c.key() + ".", out);
}
}  // namespace

StateDict state_dict(const torch::nn::Module& module) {
  StateDict out;
  collect_state(module, "", out);
  return out;
}

}  // namespace graft
