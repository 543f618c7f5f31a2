// graft export --format torchscript, graft predict and graft eval's optimized path, end to
// end with the graft binary, against Python (deploy_oracle.py): the exported file in
// torch.jit.load, torchvision's published preprocessing, and the errors a user can cause.
#define BOOST_TEST_MODULE deploy
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "support/run.h"

namespace fs = std::filesystem;
using nlohmann::json;
using graft::test::contains;
using graft::test::run;

namespace {

const std::string kGraft = GRAFT_BIN;
const std::string kOracle = std::string(GRAFT_PYTHON) + " " + GRAFT_SOURCE_DIR + "/tests/cli/deploy_oracle.py";
const std::string kRecipe = std::string(GRAFT_SOURCE_DIR) + "/recipes/fashion_mnist_cnn.yaml";

/// Shared by the cases: test images, and a short training run of the default recipe.
struct World {
  fs::path dir = graft::test::temp_dir("deploy");
  std::string checkpoint, model;
  World() {
    const auto images = run(kOracle + " images " + dir.string());
    BOOST_TEST_REQUIRE(images.code == 0, images.err);
    const auto train = run(kGraft + " train " + kRecipe + " --run-dir " + (dir / "run").string() +
                           " --set trainer.epochs=1 --set trainer.max_steps=40 --set trainer.test=false");
    BOOST_TEST_REQUIRE(train.code == 0, train.err);
    checkpoint = (dir / "run/checkpoints/last.pth").string();
    model = (dir / "cnn.pt").string();
    const auto exported = run(kGraft + " export " + checkpoint + " " + model + " --format torchscript");
    BOOST_TEST_REQUIRE(exported.code == 0, exported.err);
  }
};

World& world() {
  static World w;
  return w;
}

std::string path(const std::string& rel) { return (world().dir / rel).string(); }

/// file name -> top-1 class index of `graft predict ... --json`.
std::map<std::string, std::int64_t> top1_of(const json& predictions) {
  std::map<std::string, std::int64_t> out;
  for (const auto& p : predictions) out[fs::path(p["file"].get<std::string>()).filename().string()] = p["top"][0]["index"];
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(python_runs_the_exported_model_as_graft_predict_does) {
  auto& w = world();
  const auto py = run(kOracle + " run " + w.model + " " + w.dir.string());
  BOOST_TEST_REQUIRE(py.code == 0, py.err);
  const auto oracle = json::parse(py.out);
  const auto& meta = oracle["graft_json"];
  BOOST_TEST(meta["input_shape"] == json({1, 28, 28}));
  BOOST_TEST(meta["classes"].size() == 10u);
  BOOST_TEST(meta["classes"][9] == "Ankle boot");
  BOOST_TEST(meta["backbone"] == "simple_cnn");
  BOOST_TEST(meta["transforms"][0] == "to_tensor");
  BOOST_TEST(meta["transforms"][1]["name"] == "normalize");
  BOOST_TEST(meta["preprocessing"]["mean"].size() == 1u);
  BOOST_TEST(contains(meta["recipe"].get<std::string>(), "simple_cnn"));

  // the exported file alone, optimized (the default) and eager
  for (const std::string flags : {"", " --eager"}) {
    const auto r = run(kGraft + " predict " + w.model + " " + path("fmnist") + " --json --topk 3" + flags);
    BOOST_TEST_REQUIRE(r.code == 0, r.err);
    const auto got = json::parse(r.out);
    BOOST_TEST(got.size() == 40u);
    BOOST_TEST(got[0]["top"].size() == 3u);
    BOOST_TEST(got[0]["top"][0]["class"] == meta["classes"][got[0]["top"][0]["index"].get<int>()]);
    for (const auto& [file, index] : top1_of(got)) BOOST_TEST(index == oracle["top1"][file].get<std::int64_t>(), file);
  }
  // the checkpoint with its own recipe, and with the recipe given
  const auto own = run(kGraft + " predict --checkpoint " + w.checkpoint + " " + path("fmnist") + " --json");
  BOOST_TEST_REQUIRE(own.code == 0, own.err);
  const auto given = run(kGraft + " predict " + kRecipe + " --checkpoint " + w.checkpoint + " " + path("fmnist") + " --json");
  BOOST_TEST_REQUIRE(given.code == 0, given.err);
  BOOST_TEST(top1_of(json::parse(own.out)) == top1_of(json::parse(given.out)));
  for (const auto& [file, index] : top1_of(json::parse(own.out))) BOOST_TEST(index == oracle["top1"][file].get<std::int64_t>());
  // text output: one line per image, top-k names with percentages
  const auto text = run(kGraft + " predict " + w.model + " " + path("fmnist/00.png") + " --topk 2");
  BOOST_TEST_REQUIRE(text.code == 0, text.err);
  BOOST_TEST(contains(text.out, "00.png: "));
  BOOST_TEST(contains(text.out, "%, "));
}

BOOST_AUTO_TEST_CASE(eval_runs_the_optimized_trace_with_eager_top1_and_loss) {
  auto& w = world();
  const auto fast = run(kGraft + " eval " + kRecipe + " --checkpoint " + w.checkpoint + " --json");
  const auto eager = run(kGraft + " eval " + kRecipe + " --checkpoint " + w.checkpoint + " --json --eager");
  BOOST_TEST_REQUIRE(fast.code == 0, fast.err);
  BOOST_TEST_REQUIRE(eager.code == 0, eager.err);
  const auto a = json::parse(fast.out), b = json::parse(eager.out);
  BOOST_TEST(a["samples"] == 10000);
  BOOST_TEST(a["top1"].get<double>() == b["top1"].get<double>());  // the same images right
  BOOST_TEST(std::abs(a["loss"].get<double>() - b["loss"].get<double>()) <= 1e-4);
}

BOOST_AUTO_TEST_CASE(a_bad_image_is_one_line_naming_it_and_keep_going_predicts_the_others) {
  auto& w = world();
  const auto stop = run(kGraft + " predict " + w.model + " " + path("rgb.png") + " " + path("fmnist/00.png"));
  BOOST_TEST(stop.code == 2);
  BOOST_TEST(stop.out.empty());
  BOOST_TEST(stop.err == "error: " + path("rgb.png") + ": an image with 3 channels; the model takes 1\n");

  const auto r = run(kGraft + " predict " + w.model + " " + path("fmnist/00.png") + " " + path("rgb.png") + " " +
                     path("small.png") + " " + path("bad.png") + " " + path("absent.png") + " --keep-going");
  BOOST_TEST(r.code == 2);
  BOOST_TEST(contains(r.out, "00.png: "));
  BOOST_TEST(contains(r.err, "error: " + path("small.png") + ": [1, 20, 20] after the evaluation transforms; the model takes [1, 28, 28]"));
  BOOST_TEST(contains(r.err, "error: " + path("bad.png") + ": "));
  BOOST_TEST(contains(r.err, "error: " + path("absent.png") + ": no such file"));
  BOOST_TEST(contains(r.err, "4 of 5 images not predicted"));
}

BOOST_AUTO_TEST_CASE(eval_and_predict_need_only_the_split_they_use) {
  auto& w = world();
  // an image folder with only test/: training could not run on it, evaluating can
  const auto recipe = w.dir / "test_only.yaml";
  std::ofstream(recipe) << "base: " << kRecipe << "\ndata:\n  dataset: {name: image_folder, root: " << path("folder")
                        << ", mode: gray}\n  val: none\n";
  const auto e = run(kGraft + " eval " + recipe.string() + " --checkpoint " + w.checkpoint + " --split test --json");
  BOOST_TEST_REQUIRE(e.code == 0, e.err);
  BOOST_TEST(json::parse(e.out)["samples"] == 20);
  const auto p = run(kGraft + " predict " + recipe.string() + " --checkpoint " + w.checkpoint + " " + path("folder/test") + " --json");
  BOOST_TEST_REQUIRE(p.code == 0, p.err);
  BOOST_TEST(json::parse(p.out).size() == 20u);
  // a split the recipe does not have is named
  const auto val = run(kGraft + " eval " + recipe.string() + " --checkpoint " + w.checkpoint + " --split val");
  BOOST_TEST(val.code == 2);
  BOOST_TEST(contains(val.err, "no val split"), val.err);
}

BOOST_AUTO_TEST_CASE(torchvision_weights_carry_their_preprocessing_and_imagenet_names) {
  auto& w = world();
  const auto hub = run(kOracle + " hub " + w.dir.string());
  BOOST_TEST_REQUIRE(hub.code == 0, hub.err);
  const std::string env = "TORCH_HOME=" + w.dir.string() + " GRAFT_OFFLINE=1 ";
  const auto recipe = w.dir / "imagenet.yaml";
  std::ofstream(recipe) << "model: {backbone: resnet18, weights: torchvision:resnet18}\n";
  const auto check = run(env + kGraft + " check " + recipe.string());
  BOOST_TEST_REQUIRE(check.code == 0, check.err);
  BOOST_TEST(contains(check.out, "resize 256 / crop 224 / bilinear antialias"), check.out);
  BOOST_TEST(contains(check.out, "1000 ImageNet classes"), check.out);

  // the published weights file is a plain state dict: the recipe says what model it is
  const auto weights = (w.dir / "hub/checkpoints/resnet18-f37072fd.pth").string();
  const auto model = (w.dir / "resnet18.pt").string();
  const auto ex = run(env + kGraft + " export " + weights + " " + model + " --format torchscript --recipe " + recipe.string());
  BOOST_TEST_REQUIRE(ex.code == 0, ex.err);
  const auto py = run(kOracle + " imagenet " + model + " " + weights + " " + path("photo.jpg"));
  BOOST_TEST_REQUIRE(py.code == 0, py.err);
  const auto oracle = json::parse(py.out);
  BOOST_TEST(oracle["diff"].get<double>() <= 1e-4);
  BOOST_TEST(oracle["graft_json"]["classes"].size() == 1000u);
  BOOST_TEST(oracle["graft_json"]["classes"][0] == "tench");
  BOOST_TEST(oracle["graft_json"]["input_shape"] == json({3, 224, 224}));
  BOOST_TEST(oracle["graft_json"]["preprocessing"]["resize"] == 256);
  BOOST_TEST(oracle["graft_json"]["preprocessing"]["crop"] == 224);

  // a recipe evaluates with torchvision's preprocessing: eval_transforms: pretrained
  fs::create_directories(w.dir / "photos/test/thing");
  fs::copy_file(path("photo.jpg"), w.dir / "photos/test/thing/photo.jpg", fs::copy_options::overwrite_existing);
  const auto with_data = w.dir / "imagenet_data.yaml";
  std::ofstream(with_data) << "base: imagenet.yaml\ndata:\n  dataset: {name: image_folder, root: " << path("photos")
                           << ", mode: rgb}\n  transforms: [to_tensor]\n  eval_transforms: pretrained\n";
  const auto e = run(env + kGraft + " eval " + with_data.string() + " --checkpoint " + weights + " --split test --json");
  BOOST_TEST_REQUIRE(e.code == 0, e.err);
  BOOST_TEST(json::parse(e.out)["samples"] == 1);
  const auto model2 = (w.dir / "resnet18_data.pt").string();
  const auto ex2 = run(env + kGraft + " export " + weights + " " + model2 + " --format torchscript --recipe " + with_data.string());
  BOOST_TEST_REQUIRE(ex2.code == 0, ex2.err);
  const auto r2 = run(kGraft + " predict " + model2 + " " + path("photo.jpg") + " --json");
  BOOST_TEST_REQUIRE(r2.code == 0, r2.err);
  BOOST_TEST(json::parse(r2.out)[0]["top"][0]["index"] == oracle["top5"][0]);

  // graft predict with the .pt alone decodes, resizes, crops and normalizes as torchvision
  const auto r = run(kGraft + " predict " + model + " " + path("photo.jpg") + " --json --eager");
  BOOST_TEST_REQUIRE(r.code == 0, r.err);
  const auto top = json::parse(r.out)[0]["top"];
  for (int k = 0; k < 5; ++k) {
    BOOST_TEST(top[k]["index"] == oracle["top5"][k]);
    BOOST_TEST(std::abs(top[k]["probability"].get<double>() - oracle["probs"][k].get<double>()) <= 1e-3);
  }
}

BOOST_AUTO_TEST_CASE(export_errors_are_one_line_with_exit_code_2) {
  auto& w = world();
  const auto weights = (w.dir / "weights.pth").string();
  BOOST_TEST_REQUIRE(run(kGraft + " export " + w.checkpoint + " " + weights).code == 0);
  auto r = run(kGraft + " export " + weights + " " + (w.dir / "x.pt").string() + " --format torchscript");
  BOOST_TEST(r.code == 2);
  BOOST_TEST(r.err == "error: " + weights + ": a plain state dict holds no recipe; give the recipe it was trained with (--recipe FILE)\n");
  r = run(kGraft + " export " + w.checkpoint + " " + (w.dir / "no/such/dir/x.pt").string() + " --format torchscript");
  BOOST_TEST(r.code == 2);
  BOOST_TEST(contains(r.err, "does not exist"), r.err);
  r = run(kGraft + " predict " + kRecipe + " " + path("fmnist/00.png"));
  BOOST_TEST(r.code == 2);
  BOOST_TEST(contains(r.err, "a recipe needs --checkpoint"), r.err);
  r = run(kGraft + " predict " + weights + " " + path("fmnist/00.png"));
  BOOST_TEST(r.code == 2);
  BOOST_TEST(contains(r.err, "not a TorchScript file"), r.err);
}

BOOST_AUTO_TEST_CASE(the_readme_cpp_program_loads_the_export_without_graft) {
  auto& w = world();
  // the program as README.md's Deploy section prints it
  const std::string readme = graft::test::slurp(std::string(GRAFT_SOURCE_DIR) + "/README.md");
  const auto from = readme.find("#include <torch/script.h>", readme.find("In C++ (LibTorch only"));
  BOOST_TEST_REQUIRE(from != std::string::npos);
  const auto to = readme.find("\n```", from);
  std::ofstream(w.dir / "main.cpp") << readme.substr(from, to - from) << "\n";  // it loads cnn.pt: w.model
  const auto built = run(std::string(GRAFT_CXX) + " -std=c++17 -O0 " + (w.dir / "main.cpp").string() + " -o " +
                         (w.dir / "demo").string() + " " + GRAFT_TORCH_FLAGS);
  BOOST_TEST_REQUIRE(built.code == 0, built.err);
  const auto r = run("cd " + w.dir.string() + " && ./demo");
  BOOST_TEST_REQUIRE(r.code == 0, r.err);
  BOOST_TEST(contains(r.out, "\"classes\""));  // graft.json printed
  BOOST_TEST(contains(r.out, "[ CPULongType{8} ]"), r.out);
}

BOOST_AUTO_TEST_CASE(features_of_an_exported_model_equal_those_of_its_checkpoint) {
  auto& w = world();
  const std::string images = " " + path("fmnist/00.png") + " " + path("fmnist/01.png") + " --layers features.0,classifier";
  const auto a = run(kGraft + " features " + w.model + images + " --out " + path("feat_pt"));
  BOOST_TEST_REQUIRE(a.code == 0, a.err);
  const auto b = run(kGraft + " features " + kRecipe + " --checkpoint " + w.checkpoint + images + " --out " + path("feat_ckpt"));
  BOOST_TEST_REQUIRE(b.code == 0, b.err);
  const auto py = run(std::string(GRAFT_PYTHON) + " -c \"import torch; a = torch.load('" + path("feat_pt/features.pth") +
                      "'); b = torch.load('" + path("feat_ckpt/features.pth") +
                      "'); print(sorted(a), [list(a[k].shape) for k in sorted(a)], max(float((a[k] - b[k]).abs().max()) for k in a))\"");
  BOOST_TEST_REQUIRE(py.code == 0, py.err);
  BOOST_TEST(py.out == "['classifier', 'features.0'] [[2, 10], [2, 32, 28, 28]] 0.0\n");
  // a checkpoint does not go with a model file
  const auto bad = run(kGraft + " features " + w.model + images + " --checkpoint " + w.checkpoint);
  BOOST_TEST(bad.code == 2);
  BOOST_TEST(contains(bad.err, "--checkpoint: only with a recipe"), bad.err);
}
