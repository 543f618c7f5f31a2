"""Oracle for test_schedulers: Python's torch.optim.lr_scheduler on what the C++ test asks.

usage: scheduler_oracle.py QUERIES.json   (prints one JSON document)
  {id: {"make": expression, "lrs": [lr per group], "momentum": m or null, "steps": n,
        "metrics": [values] or null}}
  -> {id: {"lr": [[lr of each group] for count 0..n], "momentum": [[...]] or null}}

`make` is evaluated with `opt` (SGD over one parameter per group) and the names of
torch.optim.lr_scheduler in scope. Count 0 is the optimizer's state right after the
scheduler was built; count k after k calls of scheduler.step() (with metrics[k-1] for
ReduceLROnPlateau, whose step takes the metric).
"""
import json
import sys
import warnings

import torch
from torch.optim import lr_scheduler

warnings.simplefilter("ignore")  # SequentialLR's step(0) is "deprecated"

q = json.load(open(sys.argv[1]))
scope = {k: getattr(lr_scheduler, k) for k in dir(lr_scheduler) if not k.startswith("__")}
out = {}
for key, c in q.items():
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in c["lrs"]]
    momentum = c.get("momentum")
    opt = torch.optim.SGD(groups, lr=c["lrs"][0], momentum=momentum or 0)
    sched = eval(c["make"], dict(scope, opt=opt))
    metrics = c.get("metrics")

    def snapshot(what):
        return [float(g[what]) for g in opt.param_groups]

    lrs, moms = [snapshot("lr")], [snapshot("momentum")]
    for i in range(c["steps"]):
        opt.step()
        if metrics is not None:
            sched.step(metrics[i])
        else:
            sched.step()
        lrs.append(snapshot("lr"))
        moms.append(snapshot("momentum"))
    out[key] = {"lr": lrs, "momentum": moms if momentum is not None else None}

print(json.dumps(out))
