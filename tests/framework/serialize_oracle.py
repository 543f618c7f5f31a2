"""The Python side of graft's torch.save tests.

make DIR   writes files with torch.save (zip and legacy formats) for graft to read, plus
           expected.pt holding what each should contain.
check DIR  loads the files graft wrote with torch.load(weights_only=True) and checks them.
"""
import os
import sys
from collections import OrderedDict

import torch
import torch.nn as nn


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Sequential(nn.Linear(4, 2))


def small_state():
    torch.manual_seed(0)
    m = Small()
    m.bn.running_mean.uniform_()
    m.bn.num_batches_tracked.fill_(7)
    return m.state_dict()


def dtypes():
    return {
        "f16": torch.randn(3, 2).half(),
        "bf16": torch.randn(5).bfloat16(),
        "f64": torch.randn(2, 2, dtype=torch.float64),
        "i64": torch.tensor([2**40, -3, 0]),
        "i32": torch.tensor([1, -2], dtype=torch.int32),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
    }


def views():
    base = torch.arange(12.0)
    return {"base": base, "slice": base[2:5], "transposed": base.view(3, 4).t(), "again": base}


def checkpoint():
    return {
        "epoch": 3,
        "step": 2**40 + 1,
        "loss": 0.25,
        "neg": -70000,
        "name": "run-α",
        "flags": [True, False, None],
        "pair": (1, 2.5),
        "model_state_dict": small_state(),
        "optimizer_state_dict": {"state": {0: {"momentum_buffer": torch.ones(2)}},
                                 "param_groups": [{"lr": 0.1, "params": [0, 1]}]},
        "nested": {"a": {"b": [torch.ones(1), {"c": "d"}]}},
    }


class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2] + "/pwned",))


def make(d):
    files = {
        "state": small_state(),
        "one": {"w": torch.ones(2, 2)},
        "dtypes": dtypes(),
        "views": views(),
        "checkpoint": checkpoint(),
    }
    for name, obj in files.items():
        torch.save(obj, os.path.join(d, name + ".zip.pth"))
        torch.save(obj, os.path.join(d, name + ".legacy.pth"), _use_new_zipfile_serialization=False)
    torch.save({"x": Evil()}, os.path.join(d, "evil.pth"))
    torch.save({"x": Evil()}, os.path.join(d, "evil.legacy.pth"), _use_new_zipfile_serialization=False)
    import torchvision
    torch.save(torchvision.models.resnet18(), os.path.join(d, "whole_model.pth"))
    torch.save(nn.Linear(2, 2), os.path.join(d, "whole_linear.legacy.pth"), _use_new_zipfile_serialization=False)
    # the same archive with its records deflated (a user's zip tool): torch.load reads it
    import zipfile
    with zipfile.ZipFile(os.path.join(d, "state.zip.pth")) as src, \
            zipfile.ZipFile(os.path.join(d, "state.deflated.pth"), "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    same(torch.load(os.path.join(d, "state.deflated.pth")), files["state"])
    with open(os.path.join(d, "not_torch.pth"), "w") as f:
        f.write("hello, I am text\n")


def same(a, b, path="value"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), path
        assert a.dtype == b.dtype and a.shape == b.shape, (path, a.dtype, b.dtype, a.shape, b.shape)
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a.keys()) == list(b.keys()), (path, list(a), list(b))
        for k in a:
            same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) == type(b) and len(a) == len(b), (path, a, b)
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    else:
        assert type(a) == type(b) and a == b, (path, a, b)


def check(d):
    # torch 1.13's weights_only unpickler has no BINFLOAT: floats need the full one there
    floats_ok = int(torch.__version__.split(".")[0]) >= 2
    got = torch.load(os.path.join(d, "written.pth"), weights_only=floats_ok)
    strict = torch.load(os.path.join(d, "strict.pth"), weights_only=True)
    same({k: v for k, v in got.items() if k in strict}, strict)
    expected = {
        "state": small_state(),
        "dtypes": dtypes(),
        "views": views(),
        "numbers": {"i": 5, "big": 2**40 + 1, "neg": -70000, "f": 0.125, "b": True, "none": None},
        "list": [1, "two", (3.0, False)],
        "int_keys": {0: "zero", 7: "seven"},
    }
    same(expected, got)
    # views written by graft still share one storage in Python
    v = got["views"]
    assert v["slice"].storage().data_ptr() == v["base"].storage().data_ptr()
    assert v["transposed"].stride() == (1, 4)
    # a state dict graft wrote loads strictly into the Python module
    m = Small()
    m.load_state_dict(torch.load(os.path.join(d, "state_dict.pth"), weights_only=True), strict=True)
    same(small_state(), m.state_dict())
    # a large file (written with O_DIRECT through graft's staging buffer; its tail padded
    # and cut back): every byte where it belongs
    big = torch.load(os.path.join(d, "big.pth"), weights_only=True)
    assert list(big) == ["head", "big", "tail"], list(big)
    assert torch.equal(big["big"], torch.arange(10_500_001, dtype=torch.float32))
    assert torch.equal(big["head"], torch.tensor([1, 2, 3])) and torch.equal(big["tail"], torch.tensor([4.5]))
    print("ok")


if __name__ == "__main__":
    {"make": make, "check": check}[sys.argv[1]](sys.argv[2])
