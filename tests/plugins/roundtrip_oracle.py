"""graft -> Python: loads each file graft wrote into the torchvision model, strictly, with
torch.load(weights_only=True), and reproduces graft's eval output (and, for train files,
its gradients). Prints {name: max relative difference} as JSON."""
import json
import os
import sys

import torch
import torchvision.models as models

torch.set_num_threads(1)
d = sys.argv[1]
out = {}
for f in sorted(os.listdir(d)):
    if not f.endswith(".pth"):
        continue
    data = torch.load(os.path.join(d, f), weights_only=True)
    name, mode = f[:-4].split("@")
    kwargs = {"dropout": 0.0} if mode == "train" and name.startswith("vgg") else {}
    if name == "googlenet":
        kwargs.update(aux_logits=False, init_weights=False)
    m = getattr(models, name)(**kwargs)
    m.load_state_dict(data["state_dict"], strict=True)
    x = data["input"]
    if mode == "eval":
        m.eval()
        with torch.no_grad():
            y = m(x)
        out[f] = ((y - data["output"]).abs().max() / data["output"].abs().max().clamp(min=1)).item()
    else:
        m.train()
        y = m(x)
        y.pow(2).mean().backward()
        worst = 0.0
        for k, p in m.named_parameters():
            g = data["grads"][k]
            worst = max(worst, ((p.grad - g).abs().max() / g.abs().max().clamp(min=1e-3)).item())
        out[f] = max(worst, ((y - data["output"]).abs().max() / data["output"].abs().max().clamp(min=1)).item())
print(json.dumps(out))
