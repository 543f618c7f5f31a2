// What the shipped recipes read, made offline for tests: torchvision's weights files (the
// right architectures with random weights, written by Python) and CIFAR-10 binary batches.
#pragma once

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "support/run.h"

namespace graft::test {

/// resnet18's and vgg16's torchvision weight files under TORCH_HOME=`torch_home`
/// (hub/checkpoints, torchvision's file names).
inline void write_standin_weights(const std::filesystem::path& torch_home) {
  const auto hub = torch_home / "hub" / "checkpoints";
  std::filesystem::create_directories(hub);
  const auto made = run(std::string(GRAFT_PYTHON) + " -c \"import torch, torchvision.models as m\n"
                        "for name, file in [('resnet18', 'resnet18-f37072fd.pth'), ('vgg16', 'vgg16-397923af.pth')]:\n"
                        "    torch.save(getattr(m, name)().state_dict(), '" + hub.string() + "/' + file)\"");
  if (made.code != 0) throw std::runtime_error("stand-in weights: " + made.err);
}

/// `dir`/data_batch_1..5.bin and test_batch.bin of `records` CIFAR-10 records each (1 label
/// byte + 3072 pixel bytes), and batches.meta.txt.
inline void write_cifar10(const std::filesystem::path& dir, int records) {
  std::filesystem::create_directories(dir);
  auto batch = [&](const std::string& name) {
    std::ofstream out(dir / name, std::ios::binary);
    for (int r = 0; r < records; ++r) {
      out.put(static_cast<char>(r % 10));
      for (int i = 0; i < 3072; ++i) out.put(static_cast<char>((r * 7 + i * 13) % 256));
    }
  };
  for (int k = 1; k <= 5; ++k) batch("data_batch_" + std::to_string(k) + ".bin");
  batch("test_batch.bin");
  std::ofstream(dir / "batches.meta.txt") << "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
}

}  // namespace graft::test
