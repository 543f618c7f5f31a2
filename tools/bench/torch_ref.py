"""The Python side of tools/bench.sh: the same work as graft, done by PyTorch in Python.

Run with Debian's /usr/bin/python3 (torch 1.13, torchvision 0.14: the LibTorch that graft
links). Each subcommand does one measurement and prints one JSON object on stdout; the
driver (bench.py) runs it as a child process, so that its start-up and its peak resident
memory are its own.

  train   --model cnn|resnet18 --batch N --warmup W --steps M --feed preloaded|loader
  loader  --batch N --batches M                    the data pipeline alone (no training)
  ckpt    --arch resnet50 --dir D --repeats K      torch.save / torch.load of a state dict
  jpegs   --out DIR [--classes C --per-class N]    write the JPEG image folder of the folder rows
                                                   (photo-like 500x375 images, deterministic)
  folder  --dir DIR --workers W --batches M        torchvision's ImageFolder + DataLoader through
                                                   RandomResizedCrop(224), flip, ToTensor, Normalize
  run     --model M --steps K [--resume CKPT] --save CKPT
          a whole short run, as `graft train` does it: open the data, build model and
          optimizer, (load a checkpoint), train K steps, save a checkpoint, exit
"""
import argparse
import gzip
import json
import os
import sys
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

FASHION = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530  # the recipes' normalize


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * k:8 + 4 * k], "big") for k in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def fashion_mnist(root=FASHION, split="train"):
    """uint8 images [N, 1, 28, 28] and int64 labels [N], from the IDX files (.gz or not)."""
    prefix = "train" if split == "train" else "t10k"

    def find(name):
        for suffix in ("", ".gz"):
            if os.path.exists(os.path.join(root, name + suffix)):
                return os.path.join(root, name + suffix)
        raise FileNotFoundError(os.path.join(root, name))

    images = torch.from_numpy(read_idx(find(prefix + "-images-idx3-ubyte")).copy()).unsqueeze(1)
    labels = torch.from_numpy(read_idx(find(prefix + "-labels-idx1-ubyte")).astype(np.int64))
    return images, labels


def simple_cnn(width=32, hidden=256, dropout=0.3, in_channels=1, num_classes=10, size=28):
    """graft's simple_cnn backbone (plugins/backbones/small_nets.cpp), same keys and layers."""
    after = size // 2 // 2
    features = nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2))
    classifier = nn.Sequential(nn.Linear(2 * width * after * after, hidden), nn.ReLU(), nn.Dropout(dropout),
                               nn.Linear(hidden, num_classes))
    return nn.Sequential(OrderedDict(features=features, flatten=nn.Flatten(), classifier=classifier))


def resnet18_1ch(num_classes=10):
    """torchvision's resnet18 with a 1-channel conv1, as graft's `model.in_channels: 1`."""
    import torchvision
    m = torchvision.models.resnet18(num_classes=num_classes)
    m.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return m


def build(model):
    if model == "cnn":
        return simple_cnn()
    if model == "resnet18":
        return resnet18_1ch()
    raise SystemExit("unknown model " + model)


def sgd(model):
    # the benchmark's optimizer, on both sides
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)


class Augmented(torch.utils.data.Dataset):
    """random_crop(28, padding 2) + random_horizontal_flip + to_tensor + normalize, per sample."""

    def __init__(self, images, labels):
        import torchvision
        self.images, self.labels = images, labels
        self.transform = torchvision.transforms.Compose([
            torchvision.transforms.RandomCrop(28, padding=2),
            torchvision.transforms.RandomHorizontalFlip(),
            torchvision.transforms.ConvertImageDtype(torch.float32),
            torchvision.transforms.Normalize([MEAN], [STD]),
        ])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]


def preloaded_batches(images, labels, batch, seed=0):
    """Every image converted and normalised once; a batch is a gather of a shuffled order."""
    x_all = images.float().div_(255).sub_(MEAN).div_(STD)
    g = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(labels), generator=g)
        for k in range(0, len(order) - batch + 1, batch):
            idx = order[k:k + batch]
            yield x_all.index_select(0, idx), labels.index_select(0, idx)


def loader_batches(images, labels, batch, workers):
    loader = torch.utils.data.DataLoader(Augmented(images, labels), batch_size=batch, shuffle=True,
                                         num_workers=workers, drop_last=True, persistent_workers=workers > 0)
    while True:
        yield from loader


def step(model, optimizer, criterion, x, y, counts):
    # what graft's trainer does per batch: forward, loss (its value read), top-1/top-5
    # counts, backward, step, zero_grad
    out = model(x)
    loss = criterion(out, y)
    value = loss.item()
    with torch.no_grad():
        top5 = out.topk(5, 1).indices
        hits = top5 == y.unsqueeze(1)
        counts[0] += int(hits[:, 0].sum())
        counts[1] += int(hits.any(1).sum())
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return value


def cmd_train(a):
    torch.manual_seed(0)
    images, labels = fashion_mnist(a.root)
    model = build(a.model)
    model.train()
    optimizer = sgd(model)
    criterion = nn.CrossEntropyLoss()
    batches = (preloaded_batches(images, labels, a.batch) if a.feed == "preloaded"
               else loader_batches(images, labels, a.batch, a.workers))
    counts = [0, 0]
    started = None
    for k in range(a.warmup + a.steps):
        if k == a.warmup:
            started, cpu0 = time.perf_counter(), os.times()
        x, y = next(batches)
        step(model, optimizer, criterion, x, y, counts)
    seconds = time.perf_counter() - started
    cpu1 = os.times()
    print(json.dumps({"img_per_s": a.steps * a.batch / seconds, "seconds": seconds, "steps": a.steps,
                      "batch": a.batch, "threads": torch.get_num_threads(), "user_s": cpu1.user - cpu0.user,
                      "sys_s": cpu1.system - cpu0.system, "torch": torch.__version__}))


def time_batches(batches, count):
    """img/s and seconds of `count` batches after the first (the workers are up)."""
    next(batches)
    started = time.perf_counter()
    n = 0
    for _ in range(count):
        x, _ = next(batches)
        n += x.size(0)
    seconds = time.perf_counter() - started
    return {"img_per_s": n / seconds, "seconds": seconds, "batches": count}


def cmd_loader(a):
    images, labels = fashion_mnist(a.root)
    print(json.dumps(time_batches(loader_batches(images, labels, a.batch, a.workers), a.batches)))


def cmd_ckpt(a):
    import torchvision
    model = getattr(torchvision.models, a.arch)()
    state = model.state_dict()
    path = os.path.join(a.dir, "python-" + a.arch + ".pth")
    save, save_fsync, load = [], [], []
    for _ in range(a.repeats):
        t = time.perf_counter()
        torch.save(state, path)
        save.append(time.perf_counter() - t)
        t = time.perf_counter()
        with open(path, "wb") as f:  # the same, and on the disk (what graft's writer does)
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        save_fsync.append(time.perf_counter() - t)
        t = time.perf_counter()
        loaded = torch.load(path)
        load.append(time.perf_counter() - t)
        assert len(loaded) == len(state)
    size = os.path.getsize(path)
    print(json.dumps({"bytes": size, "save_s": save, "save_fsync_s": save_fsync, "load_s": load,
                      "tensors": len(state)}))


def cmd_infer(a):
    """Evaluation throughput: model.eval(), torch.no_grad(), one batch of random inputs."""
    import torchvision
    torch.manual_seed(0)
    if a.model == "cnn":
        model, shape = simple_cnn(), (1, 28, 28)
    else:
        model, shape = torchvision.models.resnet18(), (3, 224, 224)
    model.eval()
    x = torch.randn((a.batch,) + shape)
    with torch.no_grad():
        for _ in range(a.warmup):
            model(x)
        t = time.perf_counter()
        for _ in range(a.iters):
            model(x)
        seconds = time.perf_counter() - t
    print(json.dumps({"img_per_s": a.batch * a.iters / seconds}))


def cmd_run(a):
    images, labels = fashion_mnist(a.root)
    torch.manual_seed(0)
    model = build(a.model)
    optimizer = sgd(model)
    done = 0
    if a.resume:
        ckpt = torch.load(a.resume)
        model.load_state_dict(ckpt["model_state_dict"])
        optimizer.load_state_dict(ckpt["optimizer_state_dict"])
        done = ckpt["step"]
    model.train()
    criterion = nn.CrossEntropyLoss()
    batches = preloaded_batches(images, labels, a.batch)
    counts = [0, 0]
    for _ in range(done, a.steps):
        x, y = next(batches)
        loss = step(model, optimizer, criterion, x, y, counts)
    torch.save({"epoch": 1, "step": a.steps, "model_state_dict": model.state_dict(),
                "optimizer_state_dict": optimizer.state_dict(), "loss": loss}, a.save)
    print(json.dumps({"steps": a.steps - done}))


# ---- the JPEG image folder (ImageNet-like) ------------------------------------------------

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def photo(rng, width=500, height=375):
    """A photo-like RGB image: smooth gradients and waves, soft-edged shapes, sensor noise
    (what JPEG and a decoder see in a photo: not flat colour, not pure noise)."""
    from PIL import Image, ImageDraw, ImageFilter
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) / max(width, height)
    planes = []
    for _ in range(3):
        a = rng.uniform(60, 190) + rng.uniform(-90, 90) * x + rng.uniform(-90, 90) * y
        for _ in range(3):
            fx, fy, phase = rng.uniform(0.5, 4), rng.uniform(0.5, 4), rng.uniform(0, 2 * np.pi)
            a = a + rng.uniform(8, 35) * np.sin(2 * np.pi * (fx * x + fy * y) + phase)
        planes.append(a)
    im = Image.fromarray(np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(6, 14))):
        x0, y0 = rng.uniform(-50, width), rng.uniform(-50, height)
        w, h = rng.uniform(20, 220), rng.uniform(20, 180)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
        elif kind == 1:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
        else:
            draw.polygon([(x0 + rng.uniform(0, w), y0 + rng.uniform(0, h)) for _ in range(5)], fill=colour)
    im = im.filter(ImageFilter.GaussianBlur(1.2))
    # texture (foliage, fabric, grain: noise at a few pixels' scale) and sensor noise
    grain = Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8), "L")
    grain = np.asarray(grain.filter(ImageFilter.GaussianBlur(1.0))).astype(np.float32) - 127.5
    fx, fy, phase = rng.uniform(0.5, 2), rng.uniform(0.5, 2), rng.uniform(0, 2 * np.pi)
    amount = 2.6 * np.clip(np.sin(2 * np.pi * (fx * x + fy * y) + phase) + 0.3, 0, 1)  # textured and smooth parts
    a = np.asarray(im).astype(np.float32) + (amount * grain)[..., None] + rng.normal(0, 4, (height, width, 3))
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "RGB")


def cmd_jpegs(a):
    """DIR/<class>/<k>.jpg, quality 90 (PIL's default 4:2:0 subsampling); kept when DIR
    already holds this set (its stamp file)."""
    stamp = os.path.join(a.out, "graft-bench-jpegs.json")
    spec = {"classes": a.classes, "per_class": a.per_class, "size": [500, 375], "quality": 90, "version": 1}
    if os.path.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == spec:
                print(json.dumps({"images": a.classes * a.per_class, "made": 0}))
                return
    total = 0
    for c in range(a.classes):
        d = os.path.join(a.out, "class%02d" % c)
        os.makedirs(d, exist_ok=True)
        for k in range(a.per_class):
            photo(np.random.default_rng([c, k])).save(os.path.join(d, "%04d.jpg" % k), format="JPEG", quality=90)
            total += os.path.getsize(os.path.join(d, "%04d.jpg" % k))
    with open(stamp, "w") as f:
        json.dump(spec, f)
    print(json.dumps({"images": a.classes * a.per_class, "made": a.classes * a.per_class,
                      "mean_kb": total / 1000.0 / (a.classes * a.per_class)}))


def cmd_folder(a):
    """torchvision's ImageFolder (PIL decoding) + DataLoader through the ImageNet training
    transforms; img/s over --batches batches after the first (the workers are up)."""
    import torchvision
    import torchvision.transforms as T
    dataset = torchvision.datasets.ImageFolder(a.dir, T.Compose([
        T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=a.batch, shuffle=True, num_workers=a.workers,
                                         persistent_workers=a.workers > 0)

    def batches():
        while True:
            yield from loader
    print(json.dumps(dict(time_batches(batches(), a.batches), workers=a.workers)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--root", default=FASHION)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--model", default="cnn")
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--warmup", type=int, default=10)
    t.add_argument("--steps", type=int, default=100)
    t.add_argument("--feed", choices=["preloaded", "loader"], default="preloaded")
    t.add_argument("--workers", type=int, default=1)
    l = sub.add_parser("loader")
    l.add_argument("--batch", type=int, default=128)
    l.add_argument("--batches", type=int, default=100)
    l.add_argument("--workers", type=int, default=1)
    c = sub.add_parser("ckpt")
    c.add_argument("--arch", default="resnet50")
    c.add_argument("--dir", required=True)
    c.add_argument("--repeats", type=int, default=3)
    i = sub.add_parser("infer")
    i.add_argument("--model", default="cnn")
    i.add_argument("--batch", type=int, default=500)
    i.add_argument("--warmup", type=int, default=2)
    i.add_argument("--iters", type=int, default=10)
    j = sub.add_parser("jpegs")
    j.add_argument("--out", required=True)
    j.add_argument("--classes", type=int, default=4)
    j.add_argument("--per-class", type=int, default=100)
    fo = sub.add_parser("folder")
    fo.add_argument("--dir", required=True)
    fo.add_argument("--batch", type=int, default=32)
    fo.add_argument("--workers", type=int, default=1)
    fo.add_argument("--batches", type=int, default=30)
    r = sub.add_parser("run")
    r.add_argument("--model", default="cnn")
    r.add_argument("--batch", type=int, default=128)
    r.add_argument("--steps", type=int, default=1)
    r.add_argument("--resume")
    r.add_argument("--save", required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    {"train": cmd_train, "loader": cmd_loader, "ckpt": cmd_ckpt, "infer": cmd_infer, "run": cmd_run,
     "jpegs": cmd_jpegs, "folder": cmd_folder}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
