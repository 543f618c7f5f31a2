"""Python side of the weights tests: hashes, torchvision's URLs, and weight files.

hashes DIR    writes DIR/blob-N files and prints {name: sha256} as JSON
urls          prints {model: file name} for torchvision's IMAGENET1K_V1 weights
lenet DIR     writes a LeNet state dict (seed 002's LeNetSequential) as lenet.pth, its
              DataParallel form (module.*) and a densenet-style legacy-key file
"""
import hashlib
import json
import os
import sys

import torch
import torch.nn as nn


def hashes(d):
    out = {}
    for n in [0, 1, 55, 56, 63, 64, 65, 1000, 1 << 20]:
        data = os.urandom(n)
        with open(os.path.join(d, f"blob-{n}"), "wb") as f:
            f.write(data)
        out[f"blob-{n}"] = hashlib.sha256(data).hexdigest()
    print(json.dumps(out))


def urls():
    import torchvision.models as m
    names = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "wide_resnet50_2",
             "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn", "alexnet",
             "densenet121", "densenet161", "densenet169", "densenet201", "squeezenet1_0", "squeezenet1_1",
             "mobilenet_v2", "googlenet", "inception_v3"]
    print(json.dumps({n: m.get_model_weights(n).IMAGENET1K_V1.url.rsplit("/", 1)[1] for n in names}))


class LeNetSequential(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2))
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, classes))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def lenet(d):
    torch.manual_seed(1)
    m = LeNetSequential(10).eval()
    sd = m.state_dict()
    torch.save(sd, os.path.join(d, "lenet.pth"))
    torch.save(sd, os.path.join(d, "lenet-legacy.pth"), _use_new_zipfile_serialization=False)
    torch.save({"module." + k: v for k, v in sd.items()}, os.path.join(d, "lenet-dp.pth"))
    torch.save({"epoch": 4, "model_state_dict": sd}, os.path.join(d, "lenet-ckpt.pth"))
    x = torch.randn(2, 3, 32, 32)
    torch.save({"input": x, "output": m(x)}, os.path.join(d, "lenet-io.pth"))


if __name__ == "__main__":
    {"hashes": lambda: hashes(sys.argv[2]), "urls": urls, "lenet": lambda: lenet(sys.argv[2])}[sys.argv[1]]()
