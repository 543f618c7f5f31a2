// graft's torch.save reader and writer against the real PyTorch (Debian's torch 1.13).
#define BOOST_TEST_MODULE serialize
#include <boost/test/unit_test.hpp>
#include <torch/torch.h>

#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include <zlib.h>

#include "graft/host/serialize.h"
#include "support/run.h"
#include "io/zip_index.h"  // graft_core's own: the CRC it checks records with

namespace fs = std::filesystem;
using graft::test::contains;

namespace {

// Python writes its files once for the whole suite.
struct PythonFiles {
  fs::path dir = graft::test::temp_dir("serialize");
  PythonFiles() {
    const auto r = graft::test::run(std::string(GRAFT_PYTHON) + " " + GRAFT_SOURCE_DIR +
                                    "/tests/framework/serialize_oracle.py make " + dir.string());
    if (r.code != 0) throw std::runtime_error("serialize_oracle.py make failed: " + r.err);
  }
  ~PythonFiles() { fs::remove_all(dir); }
  std::string operator()(const std::string& name) const { return (dir / name).string(); }
};
const PythonFiles& py() {
  static PythonFiles files;
  return files;
}

c10::IValue get(const c10::IValue& dict, const std::string& key) {
  const auto d = dict.toGenericDict();
  const auto it = d.find(c10::IValue(key));
  BOOST_REQUIRE_MESSAGE(it != d.end(), "missing key " + key);
  return it->value();
}

std::string error_of(const std::string& path) {
  try {
    graft::read_torch_file(path);
  } catch (const graft::Error& e) {
    BOOST_TEST(std::string(e.what()).find('\n') == std::string::npos);
    return e.what();
  }
  BOOST_FAIL("expected an error reading " + path);
  return "";
}

void check_equal(const c10::IValue& a, const c10::IValue& b, const std::string& path = "value") {
  BOOST_TEST_CONTEXT(path) {
    BOOST_REQUIRE(a.tagKind() == b.tagKind());
    if (a.isTensor()) {
      BOOST_TEST(a.toTensor().scalar_type() == b.toTensor().scalar_type());
      BOOST_TEST(torch::equal(a.toTensor(), b.toTensor()));
    } else if (a.isGenericDict()) {
      const auto da = a.toGenericDict(), db = b.toGenericDict();
      BOOST_REQUIRE(da.size() == db.size());
      auto ia = da.begin();
      auto ib = db.begin();
      for (; ia != da.end(); ++ia, ++ib) {
        BOOST_TEST(ia->key() == ib->key());
        check_equal(ia->value(), ib->value(), path + "." + (ia->key().isString() ? ia->key().toStringRef() : "#"));
      }
    } else if (a.isList()) {
      BOOST_REQUIRE(a.toListRef().size() == b.toListRef().size());
      for (std::size_t k = 0; k < a.toListRef().size(); ++k) check_equal(a.toListRef()[k], b.toListRef()[k], path);
    } else if (a.isTuple()) {
      BOOST_REQUIRE(a.toTupleRef().elements().size() == b.toTupleRef().elements().size());
      for (std::size_t k = 0; k < a.toTupleRef().elements().size(); ++k)
        check_equal(a.toTupleRef().elements()[k], b.toTupleRef().elements()[k], path);
    } else {
      BOOST_TEST(a == b);
    }
  }
}

const std::vector<std::string> small_keys = {"conv.weight",    "conv.bias",      "bn.weight",
                                             "bn.bias",        "bn.running_mean", "bn.running_var",
                                             "bn.num_batches_tracked", "fc.0.weight", "fc.0.bias"};

struct SmallImpl : torch::nn::Module {
  SmallImpl() {
    register_module("conv", torch::nn::Conv2d(3, 4, 3));
    register_module("bn", torch::nn::BatchNorm2d(4));
    auto seq = torch::nn::Sequential(torch::nn::Linear(4, 2));
    register_module("fc", seq);
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(both_formats_read_the_same_values) {
  for (const char* name : {"state", "one", "dtypes", "views", "checkpoint"}) {
    BOOST_TEST_CONTEXT(name) {
      const auto zip = graft::read_torch_file(py()(std::string(name) + ".zip.pth"));
      const auto legacy = graft::read_torch_file(py()(std::string(name) + ".legacy.pth"));
      check_equal(zip, legacy, name);
    }
  }
}

BOOST_AUTO_TEST_CASE(deflated_records_read_the_same_as_stored_ones) {
  check_equal(graft::read_torch_file(py()("state.deflated.pth")), graft::read_torch_file(py()("state.zip.pth")));
}

// The tensors of a zip file share one read buffer: each is still its own storage (writes to
// one leave the others alone, a re-save writes only its own bytes) and outlives the others.
BOOST_AUTO_TEST_CASE(loaded_tensors_are_independent_storages) {
  const auto dir = graft::test::temp_dir("independent");
  graft::StateDict kept;
  {
    auto sd = graft::load_state_dict(py()("state.zip.pth"));
    const auto before = sd["conv.bias"].clone();
    sd["conv.weight"].fill_(7.0f);
    BOOST_TEST(torch::equal(sd["conv.bias"], before));
    BOOST_TEST(sd["conv.weight"].storage().nbytes() == sd["conv.weight"].numel() * sizeof(float));
    kept.insert("conv.bias", sd["conv.bias"]);
  }  // every other tensor of the file is gone; the kept one still reads its values
  const auto again = graft::load_state_dict(py()("state.zip.pth"));
  BOOST_TEST(torch::equal(kept["conv.bias"], again["conv.bias"]));
  graft::save_state_dict(kept, (dir / "bias.pth").string());
  BOOST_TEST(fs::file_size(dir / "bias.pth") < 2048u);  // its 4 floats, not the whole file
  BOOST_TEST(torch::equal(graft::load_state_dict((dir / "bias.pth").string())["conv.bias"], again["conv.bias"]));
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(ordered_dict_state_dict_keeps_order_and_values) {
  for (const char* file : {"state.zip.pth", "state.legacy.pth"}) {
    const auto sd = graft::load_state_dict(py()(file));
    BOOST_TEST(sd.keys() == small_keys, file);
    BOOST_TEST(sd["bn.num_batches_tracked"].dim() == 0);
    BOOST_TEST(sd["bn.num_batches_tracked"].scalar_type() == torch::kLong);
    BOOST_TEST(sd["bn.num_batches_tracked"].item<std::int64_t>() == 7);
    BOOST_TEST(sd["conv.weight"].sizes() == torch::IntArrayRef({4, 3, 3, 3}));
  }
  const auto one = graft::load_state_dict(py()("one.zip.pth"));
  BOOST_TEST(one.size() == 1u);
  BOOST_TEST(torch::equal(one["w"], torch::ones({2, 2})));
}

BOOST_AUTO_TEST_CASE(dtypes_and_shapes) {
  for (const char* file : {"dtypes.zip.pth", "dtypes.legacy.pth"}) {
    const auto d = graft::read_torch_file(py()(file));
    BOOST_TEST_CONTEXT(file) {
      BOOST_TEST(get(d, "f16").toTensor().scalar_type() == torch::kHalf);
      BOOST_TEST(get(d, "bf16").toTensor().scalar_type() == torch::kBFloat16);
      BOOST_TEST(get(d, "f64").toTensor().scalar_type() == torch::kDouble);
      BOOST_TEST(torch::equal(get(d, "i64").toTensor(), torch::tensor({std::int64_t(1) << 40, std::int64_t(-3), std::int64_t(0)})));
      BOOST_TEST(torch::equal(get(d, "i32").toTensor(), torch::tensor({1, -2}, torch::kInt)));
      BOOST_TEST(get(d, "u8").toTensor()[1].item<int>() == 255);
      BOOST_TEST(torch::equal(get(d, "bool").toTensor(), torch::tensor({true, false, true})));
      const auto scalar = get(d, "scalar").toTensor();
      BOOST_TEST(scalar.dim() == 0);
      BOOST_TEST(scalar.item<float>() == 3.5f);
      BOOST_TEST(get(d, "empty").toTensor().sizes() == torch::IntArrayRef({0, 4}));
    }
  }
}

BOOST_AUTO_TEST_CASE(views_share_one_storage) {
  for (const char* file : {"views.zip.pth", "views.legacy.pth"}) {
    const auto d = graft::read_torch_file(py()(file));
    const auto base = get(d, "base").toTensor();
    const auto slice = get(d, "slice").toTensor();
    const auto t = get(d, "transposed").toTensor();
    BOOST_TEST(torch::equal(slice, torch::arange(2.0, 5.0).to(torch::kFloat)));
    BOOST_TEST(t.strides() == torch::IntArrayRef({1, 4}));
    BOOST_TEST(torch::equal(t, torch::arange(12.0).to(torch::kFloat).view({3, 4}).t()));
    BOOST_TEST(slice.storage().data() == base.storage().data());
    BOOST_TEST(get(d, "again").toTensor().data_ptr() == base.data_ptr());
  }
}

BOOST_AUTO_TEST_CASE(nested_checkpoint_dicts_and_scalars) {
  for (const char* file : {"checkpoint.zip.pth", "checkpoint.legacy.pth"}) {
    const auto c = graft::read_torch_file(py()(file));
    BOOST_TEST_CONTEXT(file) {
      BOOST_TEST(get(c, "epoch").toInt() == 3);
      BOOST_TEST(get(c, "step").toInt() == (std::int64_t(1) << 40) + 1);
      BOOST_TEST(get(c, "loss").toDouble() == 0.25);
      BOOST_TEST(get(c, "neg").toInt() == -70000);
      BOOST_TEST(get(c, "name").toStringRef() == "run-\xce\xb1");
      const auto flags = get(c, "flags").toListRef();
      BOOST_TEST(flags.size() == 3u);
      BOOST_TEST(flags[0].toBool() == true);
      BOOST_TEST(flags[2].isNone());
      BOOST_TEST(get(c, "pair").toTupleRef().elements()[1].toDouble() == 2.5);
      const auto opt = get(c, "optimizer_state_dict");
      const auto state = get(opt, "state").toGenericDict();
      BOOST_TEST(state.contains(c10::IValue(std::int64_t(0))));
      const auto sd = graft::load_state_dict(py()(file));  // finds model_state_dict
      BOOST_TEST(sd.keys() == small_keys);
    }
  }
}

BOOST_AUTO_TEST_CASE(malicious_pickles_are_refused_and_nothing_runs) {
  for (const char* file : {"evil.pth", "evil.legacy.pth"}) {
    const auto msg = error_of(py()(file));
    BOOST_TEST(contains(msg, "`posix.system`"), msg);
    BOOST_TEST(contains(msg, py()(file)));
  }
  BOOST_TEST(!fs::exists(py().dir / "pwned"));
}

BOOST_AUTO_TEST_CASE(whole_model_pickles_say_what_to_do) {
  const auto msg = error_of(py()("whole_model.pth"));
  BOOST_TEST(contains(msg, "holds a pickled Python object `torchvision.models.resnet.ResNet`; save "
                           "`model.state_dict()` instead"),
             msg);
  BOOST_TEST(contains(error_of(py()("whole_linear.legacy.pth")), "`torch.nn.modules.linear.Linear`"));
}

BOOST_AUTO_TEST_CASE(bad_files_are_clear_errors) {
  BOOST_TEST(contains(error_of(py()("not_torch.pth")), "is not a PyTorch file (it starts with bytes 68656c6c"));
  BOOST_TEST(contains(error_of(py()("missing.pth")), "missing.pth: no such file"));
  const auto dir = graft::test::temp_dir("bad");
  std::ofstream(dir / "empty.pth").close();
  BOOST_TEST(contains(error_of((dir / "empty.pth").string()), "is empty"));

  for (const char* name : {"checkpoint.zip.pth", "checkpoint.legacy.pth"}) {
    const std::string bytes = graft::test::slurp(py()(name));
    for (const double fraction : {0.3, 0.6, 0.95}) {
      const auto cut = dir / ("cut-" + std::to_string(fraction) + "-" + name);
      std::ofstream(cut, std::ios::binary) << bytes.substr(0, static_cast<std::size_t>(bytes.size() * fraction));
      BOOST_TEST_CONTEXT(cut) { error_of(cut.string()); }
    }
  }
  // A flipped bit in a zip's tensor data fails its CRC check.
  std::string bytes = graft::test::slurp(py()("one.zip.pth"));
  const std::string ones("\x00\x00\x80\x3f\x00\x00\x80\x3f", 8);  // the tensor's float 1.0s
  const auto at = bytes.find(ones);
  BOOST_REQUIRE(at != std::string::npos);
  bytes[at + 2] = static_cast<char>(bytes[at + 2] ^ 0x10);
  std::ofstream(dir / "flipped.pth", std::ios::binary) << bytes;
  BOOST_TEST(contains(error_of((dir / "flipped.pth").string()), "fails its CRC-32 check"));
  fs::remove_all(dir);
}

// The CRC-32 that checks every loaded record, split over threads for large records, is
// zlib's CRC for any size and split; and a flipped bit in a large record's last part is
// caught on threads as on one.
BOOST_AUTO_TEST_CASE(crc32_on_threads_is_zlibs) {
  std::vector<std::uint8_t> data((std::size_t{21} << 20) + 12345);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>((i * 2654435761u) >> 13);
  for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{4} << 20, (std::size_t{8} << 20) + 1, data.size()}) {
    const auto expected = static_cast<std::uint32_t>(::crc32(::crc32(0L, Z_NULL, 0), data.data(), static_cast<uInt>(size)));
    for (const int threads : {1, 2, 3, 8}) BOOST_TEST(graft::zip::crc32(data.data(), size, threads) == expected, size << " bytes, " << threads << " threads");
  }
  // many spans at once (records of a file): each one's own CRC, whatever the threads
  std::vector<graft::zip::Span> spans;
  for (std::uint64_t begin = 0, k = 0; begin < data.size(); ++k) {
    const std::uint64_t end = std::min<std::uint64_t>(data.size(), begin + (k % 3 == 0 ? 7 : (k * 977) << 10));
    spans.push_back({begin, end});
    begin = end + (k % 2);  // gaps between some, as local headers are
  }
  spans.push_back({5, 5});
  for (const int threads : {1, 2, 5}) {
    const auto crcs = graft::zip::crc32(data.data(), spans, threads);
    BOOST_REQUIRE(crcs.size() == spans.size());
    for (std::size_t k = 0; k < spans.size(); ++k)
      BOOST_TEST(crcs[k] == static_cast<std::uint32_t>(::crc32(::crc32(0L, Z_NULL, 0), data.data() + spans[k].begin,
                                                                static_cast<uInt>(spans[k].end - spans[k].begin))),
                 "span " << k << ", " << threads << " threads");
  }
  const auto dir = graft::test::temp_dir("crc");
  graft::StateDict sd;
  sd.insert("big", torch::arange(6000001, torch::kFloat32));  // 24 MB: split on 2+ threads
  graft::save_state_dict(sd, (dir / "big.pth").string());
  std::string bytes = graft::test::slurp(dir / "big.pth");
  const float last = 6000000.0f;
  const auto at = bytes.find(std::string(reinterpret_cast<const char*>(&last), sizeof last));
  BOOST_REQUIRE(at != std::string::npos);
  bytes[at] = static_cast<char>(bytes[at] ^ 0x01);
  std::ofstream(dir / "flipped.pth", std::ios::binary) << bytes;
  const int threads = torch::get_num_threads();
  for (const int t : {1, 2}) {
    torch::set_num_threads(t);
    BOOST_TEST(contains(error_of((dir / "flipped.pth").string()), "fails its CRC-32 check"), t << " threads");
    BOOST_TEST(torch::equal(graft::load_state_dict((dir / "big.pth").string())["big"], sd["big"]));
  }
  torch::set_num_threads(threads);
  fs::remove_all(dir);
}

// 42 MB: large enough for the O_DIRECT path of the writer, with an odd-sized tail.
graft::StateDict big_state() {
  graft::StateDict sd;
  sd.insert("head", torch::tensor({1, 2, 3}, torch::kInt64));
  sd.insert("big", torch::arange(10500001, torch::kFloat32));
  sd.insert("tail", torch::tensor({4.5f}));
  return sd;
}

void check_big(const graft::StateDict& sd) {
  BOOST_TEST(sd.keys() == big_state().keys());
  for (const auto& item : big_state()) BOOST_TEST(torch::equal(sd[item.key()], item.value()), item.key());
}

// Large files, where the file system allows it, go to the disk through a staging buffer
// with O_DIRECT; elsewhere (tmpfs) through the page cache; a size limit hit on the way is
// the same clear error in both, and no partial file is left.
BOOST_AUTO_TEST_CASE(large_files_write_on_any_file_system_and_fail_cleanly) {
  const auto dir = graft::test::temp_dir("large");
  std::vector<fs::path> dirs = {dir};
  std::string shm = "/dev/shm/graft-large-XXXXXX";  // tmpfs
  if (fs::is_directory("/dev/shm") && ::mkdtemp(shm.data())) dirs.push_back(shm);
  for (const auto& d : dirs) {
    BOOST_TEST_CONTEXT(d) {
      const auto path = (d / "big.pth").string();
      graft::save_state_dict(big_state(), path);
      check_big(graft::load_state_dict(path));
      const std::string bytes = graft::test::slurp(path);  // no padding after the zip's end record
      BOOST_TEST(bytes.compare(bytes.size() - 22, 4, "PK\x05\x06") == 0);
      // a 20 MB file size limit (ulimit -f) with SIGXFSZ ignored: writes fail with EFBIG
      struct rlimit old {};
      ::getrlimit(RLIMIT_FSIZE, &old);
      auto* previous = std::signal(SIGXFSZ, SIG_IGN);
      struct rlimit small = old;
      small.rlim_cur = 20u << 20;
      ::setrlimit(RLIMIT_FSIZE, &small);
      std::string error;
      try {
        graft::save_state_dict(big_state(), (d / "cut.pth").string());
      } catch (const graft::Error& e) {
        error = e.what();
      }
      ::setrlimit(RLIMIT_FSIZE, &old);
      std::signal(SIGXFSZ, previous);
      BOOST_TEST(contains(error, "cut.pth: cannot be written: File too large"), error);
      BOOST_TEST(!fs::exists(d / "cut.pth"));
      fs::remove_all(d);
    }
  }
}

BOOST_AUTO_TEST_CASE(python_reads_what_graft_writes_with_weights_only) {
  const auto dir = graft::test::temp_dir("written");
  c10::impl::GenericDict out(c10::StringType::get(), c10::AnyType::get());
  const auto state = graft::read_torch_file(py()("state.zip.pth"));
  out.insert("state", state);
  out.insert("dtypes", graft::read_torch_file(py()("dtypes.legacy.pth")));
  out.insert("views", graft::read_torch_file(py()("views.zip.pth")));
  c10::impl::GenericDict numbers(c10::StringType::get(), c10::AnyType::get());
  numbers.insert("i", std::int64_t(5));
  numbers.insert("big", (std::int64_t(1) << 40) + 1);
  numbers.insert("neg", std::int64_t(-70000));
  numbers.insert("f", 0.125);
  numbers.insert("b", true);
  numbers.insert("none", c10::IValue());
  out.insert("numbers", numbers);
  c10::impl::GenericList list(c10::AnyType::get());
  list.push_back(std::int64_t(1));
  list.push_back(std::string("two"));
  list.push_back(c10::ivalue::Tuple::create({c10::IValue(3.0), c10::IValue(false)}));
  out.insert("list", list);
  c10::impl::GenericDict int_keys(c10::IntType::get(), c10::AnyType::get());
  int_keys.insert(std::int64_t(0), std::string("zero"));
  int_keys.insert(std::int64_t(7), std::string("seven"));
  out.insert("int_keys", int_keys);
  graft::write_torch_file(out, (dir / "written.pth").string());
  // Torch 1.13's weights_only reader has no float opcode (2.x has): floats go in the file
  // above only, read there with the full unpickler; this one has all else.
  c10::impl::GenericDict strict(c10::StringType::get(), c10::AnyType::get());
  for (const char* key : {"state", "dtypes", "views", "int_keys"}) strict.insert(key, get(out, key));
  graft::write_torch_file(strict, (dir / "strict.pth").string());
  graft::save_state_dict(graft::load_state_dict(py()("state.legacy.pth")), (dir / "state_dict.pth").string());
  graft::save_state_dict(big_state(), (dir / "big.pth").string());
  BOOST_TEST(fs::file_size(dir / "big.pth") > 42000004u);

  const auto r = graft::test::run(std::string(GRAFT_PYTHON) + " " + GRAFT_SOURCE_DIR +
                                  "/tests/framework/serialize_oracle.py check " + dir.string());
  BOOST_TEST(r.code == 0, r.err);
  BOOST_TEST(r.out == "ok\n");

  // and graft reads its own file back identically
  check_equal(graft::read_torch_file((dir / "written.pth").string()), out);
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(state_dict_follows_python_order) {
  auto m = std::make_shared<SmallImpl>();
  const auto sd = graft::state_dict(*m);
  BOOST_TEST(sd.keys() == small_keys);
  BOOST_TEST(sd["conv.weight"].data_ptr() == m->named_parameters()["conv.weight"].data_ptr());
}
