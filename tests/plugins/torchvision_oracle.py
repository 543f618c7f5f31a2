"""The oracle for graft's torchvision backbones: the real torchvision 0.14 models.

Usage: torchvision_oracle.py DIR, where DIR/cases.json is a list of
  {"id": ..., "options": {"name": "resnet18", <graft backbone keys>...}, "input": [N, C, H, W] or null}.
Writes DIR/layouts.json ({id: [[key, shape], ...]} in state_dict() order) and, for each case
with an input, DIR/<id>.pth (the state dict, weights and BatchNorm statistics randomised)
and DIR/<id>.io.pth ({'input': x, 'output': the eval-mode output for x}).
"""
import contextlib
import json
import os
import sys
import warnings

import torch
import torchvision.models as tvm
from torch import nn

warnings.filterwarnings("ignore")
# One thread, as the C++ test: float sums then add up in the same order on both sides.
torch.set_num_threads(1)


@contextlib.contextmanager
def no_init():
    """Skips torchvision's weight initialisation (VGG's 100M-weight classifier makes it most
    of the time): a layout needs shapes only, and randomise() sets every weight anyway."""
    noop = lambda tensor, *args, **kwargs: tensor  # noqa: E731
    names = ["kaiming_normal_", "kaiming_uniform_", "normal_", "trunc_normal_", "constant_",
             "zeros_", "ones_", "uniform_"]
    saved = {name: getattr(nn.init, name) for name in names}
    resets = [nn.Linear, nn.modules.conv._ConvNd]
    saved_resets = [cls.reset_parameters for cls in resets]
    try:
        for name in names:
            setattr(nn.init, name, noop)
        for cls in resets:
            cls.reset_parameters = lambda self: None
        yield
    finally:
        for name, fn in saved.items():
            setattr(nn.init, name, fn)
        for cls, fn in zip(resets, saved_resets):
            cls.reset_parameters = fn


def build(options):
    """The torchvision model that graft's backbone `options` describe."""
    kwargs = dict(options)
    name = kwargs.pop("name")
    in_channels = kwargs.pop("in_channels", 3)
    if name.startswith("densenet") and "dropout" in kwargs:
        kwargs["drop_rate"] = kwargs.pop("dropout")
    if name in ("googlenet", "inception_v3"):
        kwargs.setdefault("aux_logits", False)  # graft's default (torchvision's is True)
        kwargs.setdefault("init_weights", True)
    model = getattr(tvm, name)(**kwargs)
    if in_channels != 3:
        # graft's in_channels changes the first convolution's input channels only.
        conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        conv.in_channels = in_channels
        conv.weight = nn.Parameter(torch.empty(conv.out_channels, in_channels // conv.groups, *conv.kernel_size))
        nn.init.kaiming_normal_(conv.weight)
    return model


def randomise(model, calibration):
    """Random weights, biases and BatchNorm parameters and statistics, none of them a no-op,
    scaled so that activations stay of order one (the outputs then say something):
    He-normal weights, and running statistics measured on a calibration batch, then jittered."""
    with torch.no_grad():
        norms = []
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.normal_(0.0, (2.0 / m.weight[0].numel()) ** 0.5)
                if m.bias is not None:
                    m.bias.uniform_(-0.1, 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.reset_running_stats()
                m.momentum = None  # a cumulative average: after one batch, that batch's statistics
                norms.append(m)
        # Inception v3's aux head needs 299x299 inputs in training mode; its statistics are
        # only jittered.
        aux = getattr(model, "AuxLogits", None)
        if aux is not None:
            model.AuxLogits = None
        model.train()
        model(calibration)
        model.eval()
        if aux is not None:
            model.AuxLogits = aux
        for m in norms:
            m.momentum = 0.1
            m.running_mean.add_(torch.empty_like(m.running_mean).uniform_(-0.1, 0.1))
            # + 0.05: a channel with no variance on the calibration batch would otherwise
            # scale float rounding by up to 1/sqrt(eps).
            m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.8, 1.2)).add_(0.05)
            m.num_batches_tracked.fill_(3)


def main(out):
    with open(os.path.join(out, "cases.json")) as f:
        cases = json.load(f)
    layouts = {}
    for seed, case in enumerate(cases):
        torch.manual_seed(seed)
        with no_init():
            model = build(case["options"])
        if case.get("input") is not None:
            shape = case["input"]
            randomise(model, torch.randn([4] + shape[1:]))
            x = torch.randn(shape)
            with torch.no_grad():
                y = model(x)
            torch.save(model.state_dict(), os.path.join(out, case["id"] + ".pth"))
            torch.save(model.state_dict(), os.path.join(out, case["id"] + ".legacy.pth"),
                       _use_new_zipfile_serialization=False)
            torch.save({"input": x, "output": y}, os.path.join(out, case["id"] + ".io.pth"))
        layouts[case["id"]] = [[k, list(v.shape)] for k, v in model.state_dict().items()]
        del model
    with open(os.path.join(out, "layouts.json"), "w") as f:
        json.dump(layouts, f)


if __name__ == "__main__":
    main(sys.argv[1])
