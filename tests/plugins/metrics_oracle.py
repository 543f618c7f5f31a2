"""Oracle for test_metrics: Python's losses and a torch/numpy computation of the metrics.

usage: metrics_oracle.py QUERIES.json   (prints one JSON document)
  losses:  [{fn: cross_entropy|nll, dtype, n, k, x (flat), t, weight or null, smoothing,
             ignore_index}]
           -> {loss, grad (flat), formula}: F.cross_entropy / F.nll_loss and the gradient of
              the loss w.r.t. x; `formula` is cross_entropy written out by hand (float64)
  metrics: [{n, k, x (flat float64, NaN as null), t, topk}]
           -> {topk: {k: correct count by torch.topk}, sorted: {k: correct count by a stable
              descending torch.sort}, confusion (flat, numpy bincount of numpy argmax),
              per_class: [accuracy or null]}
"""
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def formula(x, t, w, e, ignore):
    """torch 1.13's reduction='mean' cross-entropy, term by term, in float64."""
    x = x.detach().double()
    k = x.shape[1]
    w = torch.ones(k, dtype=torch.float64) if w is None else w.double()
    keep = t != ignore
    logp = x[keep].log_softmax(1)
    tk = t[keep]
    nll = -(w[tk] * logp.gather(1, tk[:, None]).squeeze(1)).sum()
    smooth = -(logp * w).sum()
    return (((1 - e) * nll + e / k * smooth) / w[tk].sum()).item()


def loss(q):
    dtype = DTYPES[q["dtype"]]
    x = torch.tensor(q["x"], dtype=dtype).reshape(q["n"], q["k"]).requires_grad_()
    t = torch.tensor(q["t"], dtype=torch.int64)
    w = None if q["weight"] is None else torch.tensor(q["weight"], dtype=dtype)
    if q["fn"] == "cross_entropy":
        value = F.cross_entropy(x, t, weight=w, ignore_index=q["ignore_index"], label_smoothing=q["smoothing"])
    else:
        value = F.nll_loss(x, t, weight=w, ignore_index=q["ignore_index"])
    value.backward()
    out = {"loss": value.item(), "grad": x.grad.flatten().tolist()}
    if q["fn"] == "cross_entropy":
        out["formula"] = formula(x, t, w, q["smoothing"], q["ignore_index"])
    return out


def metric(q):
    n, k = q["n"], q["k"]
    xs = np.array([np.nan if v is None else v for v in q["x"]], dtype=np.float64).reshape(n, k)
    x = torch.from_numpy(xs)
    t = torch.tensor(q["t"], dtype=torch.int64)
    order = torch.sort(x, dim=1, descending=True, stable=True).indices
    out = {"topk": {}, "sorted": {}}
    for kk in q["topk"]:
        kk = min(kk, k)
        out["topk"][str(kk)] = int((x.topk(kk, dim=1).indices == t[:, None]).any(1).sum())
        out["sorted"][str(kk)] = int((order[:, :kk] == t[:, None]).any(1).sum())
    tn = np.array(q["t"], dtype=np.int64)
    pred = np.argmax(xs, axis=1)
    out["confusion"] = np.bincount(tn * k + pred, minlength=k * k).tolist()
    out["per_class"] = [float(np.mean(pred[tn == c] == c)) if (tn == c).any() else None for c in range(k)]
    return out


q = json.load(open(sys.argv[1]))
print(json.dumps({"losses": [loss(c) for c in q["losses"]], "metrics": [metric(c) for c in q["metrics"]]}))
