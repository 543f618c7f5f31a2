"""The Python side of test_deploy: makes the images and weights the CLI tests use, and runs
exported models as a user of torch.jit.load and torchvision would.

  deploy_oracle.py images DIR          Fashion-MNIST test images 0..N as DIR/fmnist/<i>.png, plus
                                       bad files (rgb.png, small.png, bad.png) and a photo-like
                                       500x375 JPEG (DIR/photo.jpg); an image folder with only a
                                       test split (DIR/folder/test/<class>/*.png)
  deploy_oracle.py hub DIR             torchvision's resnet18 layout with seeded random weights
                                       as DIR/hub/checkpoints/resnet18-f37072fd.pth (TORCH_HOME=DIR)
  deploy_oracle.py run MODEL.pt DIR    torch.jit.load(MODEL.pt) on DIR/fmnist/*.png (x / 255, then
                                       graft.json's normalize):
                                       JSON {graft_json, top1: {file: index}}
  deploy_oracle.py imagenet MODEL.pt WEIGHTS IMAGE
                                       torchvision's resnet18 with WEIGHTS and its published
                                       preprocessing (resize 256 antialias, crop 224, normalize)
                                       on IMAGE, against the exported MODEL.pt on the same tensor:
                                       JSON {top5, probs, diff, graft_json}
"""
import gzip
import json
import os
import sys

import numpy as np
import torch
import torchvision
import torchvision.transforms.functional as F
from PIL import Image

FMNIST = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def fmnist(n):
    raw = gzip.open(FMNIST).read()[16:]
    return np.frombuffer(raw, np.uint8).reshape(-1, 28, 28)[:n]


def images(d):
    os.makedirs(f"{d}/fmnist", exist_ok=True)
    a = fmnist(40)
    for i, img in enumerate(a):
        Image.fromarray(img).save(f"{d}/fmnist/{i:02d}.png")
    Image.fromarray(np.stack([a[0]] * 3, -1)).save(f"{d}/rgb.png")
    Image.fromarray(a[0][:20, :20]).save(f"{d}/small.png")
    with open(f"{d}/bad.png", "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n truncated")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:375, 0:500]
    photo = np.stack([(x * 255 // 500), (y * 255 // 375), ((x + y) % 256)], -1).astype(np.float64)
    photo += rng.normal(0, 12, photo.shape)
    Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(f"{d}/photo.jpg", quality=90)
    labels = gzip.open("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").read()[8:]
    for i, img in enumerate(a[:20]):
        os.makedirs(f"{d}/folder/test/c{labels[i]}", exist_ok=True)
        Image.fromarray(img).save(f"{d}/folder/test/c{labels[i]}/{i:02d}.png")


def hub(d):
    os.makedirs(f"{d}/hub/checkpoints", exist_ok=True)
    torch.manual_seed(0)
    m = torchvision.models.resnet18()
    torch.save(m.state_dict(), f"{d}/hub/checkpoints/resnet18-f37072fd.pth")


def load(path):
    files = {"graft.json": ""}
    m = torch.jit.load(path, _extra_files=files)
    m.eval()
    return m, json.loads(files["graft.json"])


def run(path, d):
    m, meta = load(path)
    names = sorted(os.listdir(f"{d}/fmnist"))
    x = torch.stack([F.pil_to_tensor(Image.open(f"{d}/fmnist/{n}")).float() / 255 for n in names])
    pre = meta["preprocessing"]
    if "mean" in pre:
        x = F.normalize(x, pre["mean"], pre["std"])
    with torch.no_grad():
        top1 = m(x).argmax(1).tolist()
    print(json.dumps({"graft_json": meta, "top1": {n: t for n, t in zip(names, top1)}}))


def imagenet(path, weights, image):
    m, meta = load(path)
    tv = torchvision.models.resnet18()
    tv.load_state_dict(torch.load(weights))
    tv.eval()
    img = torchvision.io.read_image(image)
    x = F.resize(img, [256], interpolation=F.InterpolationMode.BILINEAR, antialias=True)
    x = F.center_crop(x, [224])
    x = F.normalize(F.convert_image_dtype(x, torch.float), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    with torch.no_grad():
        p = torch.softmax(tv(x[None]), 1)[0]
        diff = float((m(x[None]) - tv(x[None])).abs().max())
    probs, top5 = p.topk(5)
    print(json.dumps({"top5": top5.tolist(), "probs": probs.tolist(), "diff": diff, "graft_json": meta}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    {"images": lambda: images(sys.argv[2]), "hub": lambda: hub(sys.argv[2]), "run": lambda: run(sys.argv[2], sys.argv[3]),
     "imagenet": lambda: imagenet(sys.argv[2], sys.argv[3], sys.argv[4])}[cmd]()
