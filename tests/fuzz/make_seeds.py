#!/usr/bin/python3
"""Writes the fuzz harnesses' seed corpora into tests/fuzz/corpus/ (committed; rerun after
changing an input format): /usr/bin/python3 tests/fuzz/make_seeds.py [torch image idx cifar recipe].
Needs Debian's python3-torch and python3-pil (tools/setup.sh installs them).

Seeds are small on purpose: libFuzzer mutates them best under its default 4 KiB max_len.
The recipe seeds are the shipped recipes as they are, plus the recipe tests' `base:` cases."""
import gzip
import io
import pathlib
import struct
import sys
from collections import OrderedDict

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORPUS = HERE / "corpus"


def put(harness, name, data):
    d = CORPUS / harness
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def torch_seeds():
    import torch
    torch.manual_seed(0)
    objs = {
        "tensor": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "state_dict": OrderedDict([("fc.weight", torch.ones(2, 3)), ("fc.bias", torch.zeros(2)),
                                   ("bn.num_batches_tracked", torch.tensor(3))]),
        "views": (lambda b: {"a": b[1:], "b": b.view(2, 2).t(), "n": None, "f": 1.5, "s": "x", "l": [1, 2, (3, 4)]})(
            torch.arange(4, dtype=torch.int64)),
        "dtypes": {str(dt): torch.ones(2, dtype=dt) for dt in
                   (torch.float64, torch.float16, torch.bfloat16, torch.int32, torch.int16, torch.int8,
                    torch.uint8, torch.bool, torch.complex64)},
        "checkpoint": {"epoch": 3, "step": 10, "model_state_dict": OrderedDict([("w", torch.randn(2, 2))]),
                       "optimizer_state_dict": {"state": {0: {"momentum_buffer": torch.zeros(2, 2)}},
                                                "param_groups": [{"lr": 0.1, "params": [0]}]},
                       "loss": 0.25},
        "parameter": OrderedDict([("p", torch.nn.Parameter(torch.ones(3)))]),
        "empty": torch.zeros(0, 3),
    }
    for name, obj in objs.items():
        for legacy in (False, True):
            buf = io.BytesIO()
            torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
            put("fuzz_torch_file", f"{name}{'_legacy' if legacy else ''}.pth", buf.getvalue())
    # a deflated zip record (torch.save stores them; other zip writers compress)
    import zipfile
    buf = io.BytesIO()
    torch.save({"w": torch.ones(4)}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            z.writestr(info.filename, src.read(info.filename))
    put("fuzz_torch_file", "deflated.pth", out.getvalue())


def image_seeds():
    from PIL import Image
    def save(img, name, **kw):
        b = io.BytesIO()
        img.save(b, **kw)
        put("fuzz_decode", name, b.getvalue())
    rgb = Image.new("RGB", (5, 4))
    rgb.putdata([(x * 40, y * 60, (x + y) * 20) for y in range(4) for x in range(5)])
    save(rgb, "rgb.png", format="PNG")
    save(rgb, "rgb_interlaced.png", format="PNG", interlace=1)
    save(rgb.convert("L"), "gray.png", format="PNG")
    save(rgb.convert("1"), "bilevel.png", format="PNG")
    save(rgb.convert("RGBA"), "rgba.png", format="PNG")
    save(rgb.convert("LA"), "gray_alpha.png", format="PNG")
    save(rgb.convert("P"), "palette.png", format="PNG")
    save(rgb.convert("P"), "palette_trns.png", format="PNG", transparency=0)
    save(rgb.convert("L").convert("I").point(lambda v: v * 256), "gray16.png", format="PNG")
    save(rgb, "rgb.jpg", format="JPEG", quality=90)
    save(rgb, "rgb_progressive.jpg", format="JPEG", progressive=True)
    save(rgb.convert("L"), "gray.jpg", format="JPEG")
    save(rgb.convert("CMYK"), "cmyk.jpg", format="JPEG")


def idx_seeds():
    n, rows, cols = 3, 4, 4
    images = struct.pack(">IIII", 0x803, n, rows, cols) + bytes(range(n * rows * cols))
    labels = struct.pack(">II", 0x801, n) + bytes([1, 0, 9])
    def seed(name, flags, img, lab):
        put("fuzz_idx", name, bytes([flags]) + struct.pack("<H", len(img)) + img + lab)
    seed("plain_train", 0, images, labels)
    seed("plain_test_fashion", 4 | 8, images, labels)
    seed("gz_images", 1, gzip.compress(images, mtime=0), labels)
    seed("gz_both", 3, gzip.compress(images, mtime=0), gzip.compress(labels, mtime=0))
    seed("empty", 0, struct.pack(">IIII", 0x803, 0, 28, 28), struct.pack(">II", 0x801, 0))


def cifar_seeds():
    records = b"".join(bytes([label]) + bytes((label * 7 + k) % 256 for k in range(3072)) for label in (3, 9))
    meta = "\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]) + "\n"
    put("fuzz_cifar", "two_records", bytes([0]) + records)
    put("fuzz_cifar", "with_meta", bytes([len(meta)]) + meta.encode() + records[:3073])


def recipe_seeds():
    import re
    for f in sorted((ROOT / "recipes").rglob("*.yaml")):
        text = f.read_text()
        # a sibling base travels with its recipe as a "#@ file" section
        for base in re.findall(r"^base:\s*(\S+)\s*$", text, re.M):
            if (f.parent / base).is_file() and "/" not in base:
                text += f"#@ file {base}\n" + (f.parent / base).read_text()
        put("fuzz_recipe", f.relative_to(ROOT / "recipes").as_posix().replace("/", "_"), text)
    put("fuzz_recipe", "bases.yaml",
        "base: mid.yaml\nmodel:\n  backbone:\n    name: simple_cnn\n    num_classes: 10\n"
        "#@ file mid.yaml\nbase: [common.yaml]\ntrainer:\n  epochs: 7\n"
        "#@ file common.yaml\nseed: 1\nmodel:\n  backbone: lenet\n  input_shape: [1, 28, 28]\noptimizer: {name: sgd, lr: 0.1}\n")
    put("fuzz_recipe", "cycle.yaml", "base: a.yaml\n#@ file a.yaml\nbase: recipe.yaml\n")
    put("fuzz_recipe", "overrides.yaml",
        "model:\n  backbone: {name: mlp, hidden: [8, 4]}\nhooks: [{name: early_stopping, patience: 2}]\n"
        "#@ set model.backbone.hidden=[64,32]\n#@ set hooks.0.patience=5\n#@ set seed=3\n")


if __name__ == "__main__":
    which = sys.argv[1:] or ["torch", "image", "idx", "cifar", "recipe"]
    for w in which:
        globals()[f"{w}_seeds"]()
        print("make_seeds:", w)
