"""Oracle for test_initializers: Python's torch.nn.init on what the C++ test asks.

usage: init_oracle.py QUERIES.json   (prints one JSON document)
  gains: [[nonlinearity, param or null], ...] -> calculate_gain's value, or null when refused
  dirac: [[shape, groups], ...]              -> dirac_'s output, flattened
  stats: {id: [expression, shape]}           -> mean/std/min/max of the expression applied to
                                                torch.empty(shape) as `t` (nn.init in scope)
"""
import json
import sys

import torch
from torch.nn import init

q = json.load(open(sys.argv[1]))
torch.manual_seed(0)
out = {"gains": [], "dirac": [], "stats": {}}

for name, param in q["gains"]:
    try:
        out["gains"].append(float(init.calculate_gain(name, param)))
    except ValueError:
        out["gains"].append(None)

for shape, groups in q["dirac"]:
    out["dirac"].append(init.dirac_(torch.empty(shape), groups=groups).flatten().tolist())

scope = {k: getattr(init, k) for k in dir(init) if not k.startswith("__")}
for key, (expr, shape) in q["stats"].items():
    t = torch.empty(shape)
    eval(expr, dict(scope, t=t))
    out["stats"][key] = {"mean": t.mean().item(), "std": t.std().item(),
                         "min": t.min().item(), "max": t.max().item()}

print(json.dumps(out))
