// Weight sources (path, torch hub cache, URL through a local HTTP server), key mapping and
// the loading report, against Python's torch, hashlib and torchvision.
#define BOOST_TEST_MODULE weights
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "graft/host/download.h"
#include "graft/host/sha256.h"
#include "graft/glob.h"
#include "graft/model.h"
#include "graft/host/recipe.h"
#include "graft/host/registry.h"
#include "graft/host/weights.h"
#include "support/plugins.h"
#include "support/run.h"
#include "support/wait.h"

namespace fs = std::filesystem;
using graft::test::contains;
using graft::test::run;
using graft::test::one_line_error_of;

namespace {

const std::string python = std::string(GRAFT_PYTHON) + " " + GRAFT_SOURCE_DIR + "/tests/framework/";

// Python's LeNet files, made once.
struct LenetFiles {
  fs::path dir = graft::test::temp_dir("weights");
  LenetFiles() {
    const auto r = run(python + "weights_oracle.py lenet " + dir.string());
    if (r.code != 0) throw std::runtime_error(r.err);
  }
  ~LenetFiles() { fs::remove_all(dir); }
  std::string operator()(const std::string& n) const { return (dir / n).string(); }
};
const LenetFiles& lenet_files() {
  static LenetFiles f;
  return f;
}

torch::nn::AnyModule make_lenet() {
  return graft::test::registry().create<graft::Kind::backbone>(graft::test::yaml("name: lenet"));
}

// The local HTTP server of tests/framework/http_server.py, on 127.0.0.1.
struct Server {
  fs::path root = graft::test::temp_dir("http");
  int pid = 0;
  std::string base;
  Server() {
    fs::create_directories(root / "files");
    const auto port_file = root / "port";
    const auto r = run(python + "http_server.py " + root.string() + " " + port_file.string() + " " + std::to_string(::getpid()) +
                       " >" + (root / "server.log").string() + " 2>&1 & echo $!");
    pid = std::stoi(r.out);
    graft::test::wait_until([&] { return fs::exists(port_file) || ::kill(pid, 0) != 0; }, "the test HTTP server's port file");
    if (!fs::exists(port_file)) throw std::runtime_error("the test HTTP server did not start: " + graft::test::slurp(root / "server.log"));
    base = "http://127.0.0.1:" + graft::test::slurp(port_file) + "/";
  }
  ~Server() {
    if (pid > 0) ::kill(pid, SIGTERM);
    fs::remove_all(root);
  }
  void serve(const std::string& name, const std::string& from) const { fs::copy_file(from, root / "files" / name); }
  std::size_t requests() const {
    std::ifstream in(root / "requests.log");
    return static_cast<std::size_t>(std::count(std::istreambuf_iterator<char>(in), {}, '\n'));
  }
};

// A fresh torch hub cache for one test.
struct HubCache {
  fs::path home = graft::test::temp_dir("torch-home");
  HubCache() {
    ::setenv("TORCH_HOME", home.c_str(), 1);
    ::unsetenv("GRAFT_OFFLINE");
    ::unsetenv("GRAFT_TORCHVISION_URL");
  }
  ~HubCache() {
    ::unsetenv("TORCH_HOME");
    ::unsetenv("GRAFT_OFFLINE");
    ::unsetenv("GRAFT_TORCHVISION_URL");
    fs::remove_all(home);
  }
  fs::path dir() const { return home / "hub" / "checkpoints"; }
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir(), ec)) out.push_back(e.path().filename().string());
    return out;
  }
};

std::string hashed_copy(const std::string& src, const fs::path& dir, const std::string& stem) {
  const std::string name = stem + "-" + graft::sha256_file(src).substr(0, 8) + ".pth";
  fs::copy_file(src, dir / name);
  return name;
}

}  // namespace

BOOST_AUTO_TEST_CASE(sha256_matches_hashlib) {
  const auto dir = graft::test::temp_dir("sha");
  const auto r = run(python + "weights_oracle.py hashes " + dir.string());
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  const auto expected = nlohmann::json::parse(r.out);
  BOOST_TEST(expected.size() == 9u);
  for (const auto& item : expected.items())
    BOOST_TEST(graft::sha256_file((dir / item.key()).string()) == item.value().get<std::string>(), item.key());
  BOOST_TEST(graft::sha256_hex("abc", 3) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(torchvision_file_names_match_torchvision) {
  const auto r = run(python + "weights_oracle.py urls");
  BOOST_REQUIRE_MESSAGE(r.code == 0, r.err);
  const auto urls = nlohmann::json::parse(r.out);
  BOOST_TEST(urls.size() == graft::torchvision_models().size());
  for (const auto& item : urls.items())
    BOOST_TEST(graft::torchvision_file(item.key()).value_or("") == item.value().get<std::string>(), item.key());
  BOOST_TEST(graft::hash_prefix_of("resnet18-f37072fd.pth") == "f37072fd");
  BOOST_TEST(graft::hash_prefix_of("alexnet-owt-7be5be79.pth") == "7be5be79");
  BOOST_TEST(graft::hash_prefix_of("weights.pth") == "");
}

BOOST_AUTO_TEST_CASE(hub_dir_follows_torch) {
  ::setenv("TORCH_HOME", "/th", 1);
  BOOST_TEST(graft::torch_hub_dir() == "/th/hub/checkpoints");
  ::unsetenv("TORCH_HOME");
  ::setenv("XDG_CACHE_HOME", "/xdg", 1);
  BOOST_TEST(graft::torch_hub_dir() == "/xdg/torch/hub/checkpoints");
  ::unsetenv("XDG_CACHE_HOME");
  ::setenv("HOME", "/home/u", 1);
  BOOST_TEST(graft::torch_hub_dir() == "/home/u/.cache/torch/hub/checkpoints");
}

BOOST_AUTO_TEST_CASE(torchvision_source_resolves_in_the_hub_cache) {
  HubCache cache;
  fs::create_directories(cache.dir());
  fs::copy_file(lenet_files()("lenet.pth"), cache.dir() / "resnet18-f37072fd.pth");
  BOOST_TEST(graft::resolve_weights("torchvision:resnet18") == (cache.dir() / "resnet18-f37072fd.pth").string());
  const auto unknown = one_line_error_of([] { graft::resolve_weights("torchvision:resnet81"); });
  BOOST_TEST(contains(unknown.what(), "unknown torchvision model 'resnet81' (did you mean 'resnet18'?)"));
  BOOST_TEST(unknown.exit_code() == 2);

  ::setenv("GRAFT_OFFLINE", "1", 1);
  const auto offline = one_line_error_of([] { graft::resolve_weights("torchvision:vgg16"); });
  BOOST_TEST(contains(offline.what(), "looked for " + (cache.dir() / "vgg16-397923af.pth").string()));
  BOOST_TEST(contains(offline.what(), "download https://download.pytorch.org/models/vgg16-397923af.pth to that path"));
}

BOOST_AUTO_TEST_CASE(url_source_downloads_into_the_cache_once_with_hash_check) {
  HubCache cache;
  Server server;
  const auto name = hashed_copy(lenet_files()("lenet.pth"), server.root / "files", "lenet");
  const std::string path = graft::resolve_weights(server.base + name);
  BOOST_TEST(path == (cache.dir() / name).string());
  BOOST_TEST(graft::sha256_file(path) == graft::sha256_file(lenet_files()("lenet.pth")));
  BOOST_TEST(server.requests() == 1u);
  BOOST_TEST(graft::resolve_weights(server.base + name) == path);  // cached now: no second request
  BOOST_TEST(server.requests() == 1u);
  BOOST_TEST(cache.files() == std::vector<std::string>{name});
}

BOOST_AUTO_TEST_CASE(failed_downloads_leave_nothing_behind) {
  HubCache cache;
  Server server;
  server.serve("lenet-deadbeef.pth", lenet_files()("lenet.pth"));
  const auto wrong = one_line_error_of([&] { graft::resolve_weights(server.base + "lenet-deadbeef.pth"); });
  BOOST_TEST(contains(wrong.what(), "hash mismatch"));
  BOOST_TEST(contains(wrong.what(), "its name promises deadbeef"));

  const auto name = hashed_copy(lenet_files()("lenet.pth"), server.root / "files", "lenet");
  const auto dropped = one_line_error_of([&] { graft::resolve_weights(server.base + "drop/" + name); });
  BOOST_TEST(contains(dropped.what(), "cannot download " + server.base + "drop/" + name));

  const auto missing = one_line_error_of([&] { graft::resolve_weights(server.base + "nothing-00000000.pth"); });
  BOOST_TEST(contains(missing.what(), "404"));

  // torchvision: goes through the same download and hash check
  ::setenv("GRAFT_TORCHVISION_URL", server.base.c_str(), 1);
  server.serve("resnet18-f37072fd.pth", lenet_files()("lenet.pth"));
  BOOST_TEST(contains(one_line_error_of([] { graft::resolve_weights("torchvision:resnet18"); }).what(), "hash mismatch"));
  BOOST_TEST(cache.files().empty());  // no partial or unverified file
  BOOST_TEST(server.requests() == 4u);
}

BOOST_AUTO_TEST_CASE(key_mapping_is_a_pure_function) {
  graft::StateDict sd;
  sd.insert("module.features.0.weight", torch::zeros({1}));
  sd.insert("module.classifier.4.weight", torch::zeros({2}));
  sd.insert("module.classifier.4.bias", torch::zeros({3}));
  graft::KeyMapping m;
  m.strip_prefix = "module.";
  m.rename = {{"^classifier\\.4\\.", "head."}};
  m.exclude = {"*.bias"};
  const auto out = graft::map_keys(sd, m);
  BOOST_TEST((out.keys() == std::vector<std::string>{"features.0.weight", "head.weight"}));
  graft::KeyMapping add;
  add.add_prefix = "backbone.";
  BOOST_TEST(graft::map_keys(sd, add).keys().front() == "backbone.module.features.0.weight");
  graft::KeyMapping clash;
  clash.rename = {{"\\.(weight|bias)$", ".w"}};
  BOOST_TEST(contains(one_line_error_of([&] { graft::map_keys(sd, clash); }).what(), "both map to 'module.classifier.4.w'"));
  BOOST_TEST(graft::glob_match("layer[12].*", "layer1.0.conv1.weight"));
  BOOST_TEST(!graft::glob_match("layer[!12].*", "layer1.0.conv1.weight"));
  BOOST_TEST(graft::glob_match("*bn?.weight", "layer1.0.bn1.weight"));
}

BOOST_AUTO_TEST_CASE(loaded_weights_reproduce_pythons_output) {
  for (const char* file : {"lenet.pth", "lenet-legacy.pth", "lenet-ckpt.pth"}) {
    auto net = make_lenet();
    net.ptr()->eval();
    const auto report = graft::load_weights(*net.ptr(), graft::load_state_dict(lenet_files()(file)), true, file);
    BOOST_TEST(report.loaded.size() == 10u, file);
    BOOST_TEST(report.clean());
    const auto io = graft::read_torch_file(lenet_files()("lenet-io.pth")).toGenericDict();
    const auto out = net.forward(io.at("input").toTensor());
    BOOST_TEST((out - io.at("output").toTensor()).abs().max().item<float>() <= 1e-5f, file);
  }
}

BOOST_AUTO_TEST_CASE(strict_and_non_strict_reports) {
  const auto dp = graft::load_state_dict(lenet_files()("lenet-dp.pth"));
  auto net = make_lenet();
  const auto before = net.ptr()->named_parameters()["features.0.weight"].clone();
  const auto strict = one_line_error_of([&] { graft::load_weights(*net.ptr(), dp, true, "lenet-dp.pth"); });
  BOOST_TEST(strict.exit_code() == 2);
  BOOST_TEST(contains(strict.what(), "weights lenet-dp.pth: strict load failed: 0 loaded, 10 missing"));
  BOOST_TEST(contains(strict.what(), "10 unexpected (module.features.0.weight"));
  BOOST_TEST(torch::equal(before, net.ptr()->named_parameters()["features.0.weight"]));  // nothing loaded

  graft::KeyMapping strip;
  strip.strip_prefix = "module.";
  BOOST_TEST(graft::load_weights(*net.ptr(), graft::map_keys(dp, strip), true, "x").clean());

  // a 5-class head: the pretrained head does not fit and is reported, the rest loads
  auto small = graft::test::registry().create<graft::Kind::backbone>(graft::test::yaml("{name: lenet, num_classes: 5}"));
  const auto r = graft::load_weights(*small.ptr(), graft::map_keys(dp, strip), false, "x");
  BOOST_TEST(r.loaded.size() == 8u);
  BOOST_REQUIRE(r.mismatched.size() == 2u);
  BOOST_TEST(r.mismatched[0].key == "classifier.4.weight");
  BOOST_TEST((r.mismatched[0].model_shape == std::vector<std::int64_t>{5, 84}));
  BOOST_TEST(contains(r.table(), "classifier.4.weight: model [5, 84], file [10, 84]"));
}

BOOST_AUTO_TEST_CASE(legacy_densenet_keys_and_batchnorm_counters) {
  struct LayerImpl : torch::nn::Module {
    LayerImpl() {
      register_module("norm1", torch::nn::BatchNorm2d(2));
      register_module("conv1", torch::nn::Conv2d(2, 2, 1));
    }
  };
  struct NetImpl : torch::nn::Module {
    NetImpl() {
      auto block = std::make_shared<torch::nn::Module>();
      block->register_module("denselayer1", std::make_shared<LayerImpl>());
      register_module("denseblock1", block);
    }
  };
  NetImpl net;
  graft::StateDict old;  // the published densenet files' key form, and no num_batches_tracked
  for (const char* k : {"denseblock1.denselayer1.norm.1.weight", "denseblock1.denselayer1.norm.1.bias",
                        "denseblock1.denselayer1.norm.1.running_mean", "denseblock1.denselayer1.norm.1.running_var"})
    old.insert(k, torch::full({2}, 3.0));
  old.insert("denseblock1.denselayer1.conv.1.weight", torch::full({2, 2, 1, 1}, 5.0));
  old.insert("denseblock1.denselayer1.conv.1.bias", torch::zeros({2}));
  const auto r = graft::load_weights(net, old, true, "densenet-old.pth");
  BOOST_TEST(r.clean());
  BOOST_TEST(r.renamed.size() == 6u);
  BOOST_TEST(r.defaulted == std::vector<std::string>{"denseblock1.denselayer1.norm1.num_batches_tracked"});
  BOOST_TEST(net.named_parameters()["denseblock1.denselayer1.conv1.weight"].sum().item<float>() == 20.0f);
}

BOOST_AUTO_TEST_CASE(recipes_name_weights_from_each_source) {
  HubCache cache;
  Server server;
  const auto url_name = hashed_copy(lenet_files()("lenet.pth"), server.root / "files", "lenet");
  fs::create_directories(cache.dir());
  fs::copy_file(lenet_files()("lenet.pth"), cache.dir() / "alexnet-owt-7be5be79.pth");  // a stand-in file
  const std::string graft_bin = GRAFT_BIN;
  const auto dir = graft::test::temp_dir("recipes");
  auto check = [&](const std::string& weights) {
    std::ofstream(dir / "r.yaml") << "model:\n  backbone: lenet\n  weights: " << weights << "\n";
    return run("TORCH_HOME=" + cache.home.string() + " " + graft_bin + " check " + (dir / "r.yaml").string() + " --json");
  };
  for (const auto& w : std::vector<std::string>{lenet_files()("lenet-legacy.pth"), "torchvision:alexnet", server.base + url_name,
                        "{from: " + lenet_files()("lenet-dp.pth") + ", strip_prefix: module.}"}) {
    const auto r = check(w);
    BOOST_TEST_CONTEXT(w) {
      BOOST_TEST_REQUIRE(r.code == 0, r.err);
      const auto j = nlohmann::json::parse(r.out);
      BOOST_TEST(j["weights"]["loaded"] == 10);
      BOOST_TEST(j["weights"]["missing"].empty());
    }
  }
  const auto strict = check(lenet_files()("lenet-dp.pth"));
  BOOST_TEST(strict.code == 2);
  BOOST_TEST(contains(strict.err, "strict load failed"));
  const auto bad = check("{from: x.pth, strip_prefx: module.}");
  BOOST_TEST(bad.code == 2);
  BOOST_TEST(contains(bad.err, "r.yaml:3:26: model.weights.strip_prefx: unknown key 'strip_prefx' in weights (did you mean 'strip_prefix'?)"));
  const auto nofile = check("/nonexistent/w.pth");
  BOOST_TEST(nofile.code == 2);
  BOOST_TEST(contains(nofile.err, "r.yaml:3:12: weights: /nonexistent/w.pth: no such file"));
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(export_and_convert_commands) {
  const std::string graft_bin = GRAFT_BIN;
  const auto dir = graft::test::temp_dir("convert");
  const auto out = (dir / "plain.pth").string();
  const auto e = run(graft_bin + " export " + lenet_files()("lenet-ckpt.pth") + " " + out);
  BOOST_TEST_REQUIRE(e.code == 0, e.err);
  BOOST_TEST(graft::load_state_dict(out).keys() == graft::load_state_dict(lenet_files()("lenet.pth")).keys());

  const auto conv = (dir / "renamed.pth").string();
  const auto c = run(graft_bin + " convert " + lenet_files()("lenet-dp.pth") + " " + conv +
                     " --strip-prefix module. --rename '^classifier\\.4\\.=head.' --exclude 'features.*'");
  BOOST_TEST_REQUIRE(c.code == 0, c.err);
  const auto keys = graft::load_state_dict(conv).keys();
  BOOST_TEST((keys == std::vector<std::string>{"classifier.0.weight", "classifier.0.bias", "classifier.2.weight",
                                                "classifier.2.bias", "head.weight", "head.bias"}));
  // Python loads the converted file with weights_only
  const auto py = run(std::string(GRAFT_PYTHON) + " -c \"import torch; sd = torch.load('" + conv +
                      "', weights_only=True); print(sorted(sd)[-1])\"");
  BOOST_TEST(py.out == "head.weight\n", py.err);
  BOOST_TEST(run(graft_bin + " convert " + lenet_files()("lenet.pth") + " " + conv + " --rename 'x'").code == 2);
  BOOST_TEST(run(graft_bin + " export /nonexistent.pth " + conv).code == 1);
  fs::remove_all(dir);
}
