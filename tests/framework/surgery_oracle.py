"""Python side of the surgery tests: the seeds' edits done by hand in torchvision.

DIR gets resnet18.pth, vgg16.pth, densenet121.pth (random weights, torch.manual_seed(0)),
adapt.pth (timm's adapt_input_conv on a random conv weight for several channel counts),
multipath.pth and multipath_io.pth (seed 000's MultiPathNet: its weights, an input and its
output) and layouts.json: the state-dict keys and shapes of each edited model.
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torchvision.models as models

d = sys.argv[1]


class ChannelAttention(nn.Module):  # seed 000
    def __init__(self, in_ch):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(in_ch, in_ch // 16), nn.ReLU(), nn.Linear(in_ch // 16, in_ch), nn.Sigmoid())

    def forward(self, x):
        b, c, _, _ = x.size()
        y = self.avg_pool(x).view(b, c)
        y = self.fc(y).view(b, c, 1, 1)
        return x * y


class MultiPathNet(nn.Module):  # seed 000, its convs padded so that the paths' maps agree
    def __init__(self):
        super().__init__()
        self.path_a = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.MaxPool2d(2))
        self.path_b = nn.Sequential(nn.Conv2d(3, 64, 5, padding=2), nn.AvgPool2d(2))
        self.fusion = nn.Conv2d(128, 256, 1)

    def forward(self, x):
        x1 = self.path_a(x)
        x2 = self.path_b(x)
        return self.fusion(torch.cat([x1, x2], dim=1))


def adapt_input_conv(in_chans, conv_weight):  # timm
    conv_type = conv_weight.dtype
    conv_weight = conv_weight.float()
    O, I, J, K = conv_weight.shape
    if in_chans == 1:
        if I > 3:
            conv_weight = conv_weight.reshape(O, I // 3, 3, J, K).sum(dim=2, keepdim=False)
        else:
            conv_weight = conv_weight.sum(dim=1, keepdim=True)
    elif in_chans != 3:
        repeat = int(math.ceil(in_chans / 3))
        conv_weight = conv_weight.repeat(1, repeat, 1, 1)[:, :in_chans, :, :]
        conv_weight *= (3 / float(in_chans))
    return conv_weight.to(conv_type)


def layout(m):
    return [[k, list(v.shape)] for k, v in m.state_dict().items()]


torch.manual_seed(0)
nets = {"resnet18": models.resnet18(), "vgg16": models.vgg16(), "densenet121": models.densenet121()}
for name, net in nets.items():
    torch.save(net.state_dict(), os.path.join(d, name + ".pth"))

w = torch.randn(8, 3, 5, 5)
torch.save({"weight": w, **{f"in{n}": adapt_input_conv(n, w) for n in (1, 2, 4, 6)},
            "densenet_conv0_in1": adapt_input_conv(1, nets["densenet121"].features.conv0.weight)},
           os.path.join(d, "adapt.pth"))

out = {}
m = models.resnet18()
m.fc = nn.Sequential(nn.Linear(m.fc.in_features, 512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, 10))
m.layer3.add_module("channel_attn", ChannelAttention(256))
out["seed000"] = layout(m)
v = models.vgg16()
v.classifier.add_module("add_linear", nn.Linear(in_features=1000, out_features=10))
out["seed001_add"] = layout(v)
v = models.vgg16()
v.classifier[6] = nn.Linear(4096, 10)
out["seed001_replace"] = layout(v)
dn = models.densenet121()
dn.features.conv0 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
dn.classifier = nn.Linear(1024, 5)
out["densenet_gray"] = layout(dn)
mp = MultiPathNet().eval()
torch.save(mp.state_dict(), os.path.join(d, "multipath.pth"))
x = torch.randn(2, 3, 32, 32)
with torch.no_grad():
    torch.save({"x": x, "y": mp(x)}, os.path.join(d, "multipath_io.pth"))
out["seed000_multipath"] = layout(mp)
json.dump(out, open(os.path.join(d, "layouts.json"), "w"))
