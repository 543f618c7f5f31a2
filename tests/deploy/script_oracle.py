"""Loads graft's exported TorchScript files in Python, as a user would, and checks them.

argv[1]: a JSON list of cases {"file", "reference", "torchvision"}: the exported .pt, a
.pth of graft's own eval-mode inputs and outputs {"x1", "y1", "x2", "y2"} (two batch
sizes), and the torchvision builder whose state dict the file must load into (or null).
Prints one JSON object: per case the max |diff| at each batch size, graft.json's fields
and whether torchvision accepted the state dict.
"""
import json
import sys

import torch
import torchvision

out = {}
for case in json.load(open(sys.argv[1])):
    files = {"graft.json": ""}
    m = torch.jit.load(case["file"], _extra_files=files)
    m.eval()
    ref = torch.load(case["reference"])
    r = {"graft_json": json.loads(files["graft.json"])}
    with torch.no_grad():
        for k in ("1", "2"):
            y = m(ref["x" + k])
            r["shape" + k] = list(y.shape)
            r["diff" + k] = float((y - ref["y" + k]).abs().max())
            r["scale" + k] = float(ref["y" + k].abs().max())
    r["keys"] = list(m.state_dict().keys())
    if case["torchvision"]:
        name, kwargs = case["torchvision"]
        tv = getattr(torchvision.models, name)(**kwargs)
        result = tv.load_state_dict(m.state_dict(), strict=True)
        r["torchvision"] = len(result.missing_keys) == 0 and len(result.unexpected_keys) == 0
        tv.eval()
        with torch.no_grad():
            r["torchvision_diff"] = float((tv(ref["x2"]) - ref["y2"]).abs().max())
    out[case["file"]] = r
print(json.dumps(out))
