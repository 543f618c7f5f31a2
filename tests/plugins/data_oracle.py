"""Python's view of the data plugins' inputs, for tests/plugins/test_data.cpp.

  data_oracle.py idx GZ_ROOT PLAIN_ROOT OUT.pth     Fashion-MNIST read with gzip + numpy (and
                                                    torchvision's reader for the plain t10k files)
  data_oracle.py folder ROOT OUT.pth                write a small image tree with PIL; save what
                                                    PIL and torchvision's ImageFolder read from it
  data_oracle.py transforms IN.pth CASES.json OUT.pth
                                                    torchvision.transforms.functional on each case
  data_oracle.py jpeg_files DIR                     photo-like JPEGs of every layout (4:2:0, 4:4:4,
                                                    4:2:2, gray, progressive) and a PNG in DIR/train/x/
  data_oracle.py jpeg_crops CASES.json OUT.pth      each case's crop of a file resized as torchvision
                                                    does it: on the PIL image (ImageFolder's way,
                                                    antialiased) and on the tensor, antialias on and off
"""
import gzip
import json
import os
import sys

import numpy as np
import torch


def save(tensors, path):
    torch.save({k: v.contiguous() for k, v in tensors.items()}, path)


def idx(gz_root, plain_root, out):
    def read(path, dims):
        with gzip.open(path, "rb") as f:
            data = f.read()
        header = 4 + 4 * dims
        shape = [int.from_bytes(data[4 + 4 * d:8 + 4 * d], "big") for d in range(dims)]
        return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)

    result = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read(f"{gz_root}/{prefix}-images-idx3-ubyte.gz", 3)
        labels = read(f"{gz_root}/{prefix}-labels-idx1-ubyte.gz", 1)
        result[f"{split}_sums"] = torch.from_numpy(images.reshape(len(images), -1).astype(np.int64).sum(1))
        result[f"{split}_labels"] = torch.from_numpy(labels.astype(np.int64))
        for i in (0, 1, 777, len(images) - 1):
            result[f"{split}_{i}"] = torch.from_numpy(images[i].copy()).unsqueeze(0)
    from torchvision.datasets.mnist import read_image_file, read_label_file
    result["plain_test_images"] = read_image_file(f"{plain_root}/t10k-images-idx3-ubyte").unsqueeze(1)
    result["plain_test_labels"] = read_label_file(f"{plain_root}/t10k-labels-idx1-ubyte").long()
    save(result, out)


def folder(root, out):
    from PIL import Image
    from torchvision.datasets import ImageFolder

    rng = np.random.default_rng(7)

    def img(mode, size):
        h, w = size
        if mode == "L":
            return Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L")
        if mode == "LA":
            return Image.fromarray(rng.integers(0, 256, (h, w, 2), dtype=np.uint8), "LA")
        if mode == "RGBA":
            return Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
        if mode == "P":
            return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").quantize(16)
        if mode == "PT":  # a palette with a transparent entry (tRNS)
            im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").quantize(8)
            im.info["transparency"] = 0
            return im
        if mode == "1":
            return Image.fromarray(rng.integers(0, 2, (h, w), dtype=np.uint8) * 255, "L").convert("1")
        # smooth content so that JPEG keeps it recognisable
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([(x * 7 + y * 3) % 256, (x * 2 + y * 9) % 256, (x * y) % 256], -1).astype(np.uint8)
        return Image.fromarray(base, "RGB")

    files = {
        "train/cat/a.png": ("L", (9, 11)),
        "train/cat/b.png": ("RGB", (9, 11)),
        "train/cat/sub/c.png": ("RGBA", (9, 11)),
        "train/cat/z.jpg": ("RGB", (16, 24)),
        "train/dog/d.png": ("P", (9, 11)),
        "train/dog/e.png": ("LA", (9, 11)),
        "train/dog/f.jpeg": ("L", (16, 16)),
        "train/dog/g.png": ("1", (9, 11)),
        "train/dog/k.png": ("PT", (7, 5)),
        "train/dog/notes.txt": None,
        "train/emu/h.JPG": ("RGB", (8, 8)),
        "test/dog/i.png": ("RGB", (5, 6)),
        "test/cat/j.png": ("L", (5, 6)),
    }
    for rel, spec in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if spec is None:
            with open(path, "w") as f:
                f.write("not an image\n")
            continue
        im = img(*spec)
        if rel.lower().endswith((".jpg", ".jpeg")):
            im.save(path, format="JPEG", quality=90)
        else:
            im.save(path, format="PNG")

    result = {}
    for split in ("train", "test"):
        ds = ImageFolder(os.path.join(root, split), loader=Image.open)
        result[f"{split}_targets"] = torch.tensor([t for _, t in ds.samples], dtype=torch.int64)
        for k, (path, _) in enumerate(ds.samples):
            im = Image.open(path)
            im.load()
            keep = "L" if im.mode in ("L", "LA", "1") else "RGB"
            for mode, conv in (("keep", keep), ("rgb", "RGB"), ("gray", "L")):
                a = np.asarray(im.convert(conv))
                a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
                result[f"{split}_{k}_{mode}"] = torch.from_numpy(a.copy())
    save(result, out)


def transforms(inp, cases_path, out):
    import torchvision.transforms.functional as F
    from torchvision.transforms import InterpolationMode

    inputs = torch.load(inp)
    with open(cases_path) as f:
        cases = json.load(f)
    modes = {"nearest": InterpolationMode.NEAREST, "bilinear": InterpolationMode.BILINEAR}
    result = {}
    for case in cases:
        x = inputs[case["input"]].clone()
        op, a = case["op"], case.get("args", {})
        if op == "to_tensor":
            y = F.to_tensor(x.permute(1, 2, 0).numpy())
        elif op == "normalize":
            y = F.normalize(x, a["mean"], a["std"])
        elif op == "resize":
            y = F.resize(x, a["size"], modes[a["interpolation"]], antialias=False)
        elif op == "center_crop":
            y = F.center_crop(x, a["size"])
        elif op == "pad_crop":  # RandomCrop with its draw made in C++
            if a["padding"]:
                x = F.pad(x, a["padding"], a["fill"], a["padding_mode"])
            y = F.crop(x, a["top"], a["left"], a["height"], a["width"])
        elif op == "hflip":
            y = F.hflip(x)
        elif op == "vflip":
            y = F.vflip(x)
        elif op == "rotate":
            y = F.rotate(x, a["angle"], modes[a["interpolation"]], fill=[float(a["fill"])] * x.shape[0])
        elif op == "resized_crop":
            y = F.resized_crop(x, a["top"], a["left"], a["height"], a["width"], a["size"],
                               modes[a["interpolation"]], antialias=a.get("antialias", False))
        else:
            raise SystemExit(f"unknown op {op}")
        result[case["id"]] = y
    save(result, out)


def jpeg_files(root):
    from PIL import Image, ImageDraw, ImageFilter

    def photo(seed, width, height, mode="RGB"):
        # smooth gradients, shapes with soft edges, noise: what a decoder sees in a photo
        rng = np.random.default_rng(seed)
        y, x = np.mgrid[0:height, 0:width] / max(width, height)
        planes = [rng.uniform(50, 200) + rng.uniform(-80, 80) * x + rng.uniform(-80, 80) * y
                  + 30 * np.sin(2 * np.pi * (rng.uniform(1, 4) * x + rng.uniform(1, 4) * y)) for _ in range(3)]
        im = Image.fromarray(np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(im)
        for _ in range(8):
            x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
            box = [x0, y0, x0 + rng.uniform(10, width / 2), y0 + rng.uniform(10, height / 2)]
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
        im = im.filter(ImageFilter.GaussianBlur(1.0))
        a = np.asarray(im).astype(np.float32) + rng.normal(0, 6, (height, width, 3))
        im = Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "RGB")
        return im.convert(mode)

    d = os.path.join(root, "train", "x")
    os.makedirs(d, exist_ok=True)
    photo(1, 500, 375).save(os.path.join(d, "a.jpg"), quality=90)                 # 4:2:0
    photo(2, 375, 500).save(os.path.join(d, "b.jpg"), quality=95, subsampling=0)  # 4:4:4
    photo(3, 333, 251).save(os.path.join(d, "c.jpg"), quality=85, subsampling=1)  # 4:2:2
    photo(4, 300, 200, "L").save(os.path.join(d, "d.jpg"), quality=90)            # gray
    photo(5, 417, 311).save(os.path.join(d, "e.jpg"), quality=80, progressive=True)
    photo(6, 200, 150).save(os.path.join(d, "f.png"))


def jpeg_crops(cases_path, out):
    import torchvision.transforms.functional as F
    from PIL import Image
    from torchvision.transforms import InterpolationMode

    with open(cases_path) as f:
        cases = json.load(f)
    result = {}
    for case in cases:
        im = Image.open(case["file"])
        im.load()
        box = (case["top"], case["left"], case["height"], case["width"], case["size"])
        result[case["id"] + "_pil"] = F.pil_to_tensor(F.resized_crop(im, *box, InterpolationMode.BILINEAR))
        t = F.pil_to_tensor(im)
        for name, aa in (("aa", True), ("plain", False)):
            result[case["id"] + "_" + name] = F.resized_crop(t, *box, InterpolationMode.BILINEAR, antialias=aa)
    save(result, out)


if __name__ == "__main__":
    {"idx": idx, "folder": folder, "transforms": transforms, "jpeg_files": jpeg_files,
     "jpeg_crops": jpeg_crops}[sys.argv[1]](*sys.argv[2:])
