"""Shared pieces of Focal's model training: paths, the label scheme, the network."""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CACHE = os.environ.get("FOCAL_CACHE", os.path.expanduser("~/.cache/focal"))
DATA = os.path.join(CACHE, "modeldata")
MNI = os.path.join(DATA, "nilearn/nilearn/datasets/data/mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz")
MRICRON = os.path.join(DATA, "mricron/usr/share/mricron/templates/{}.nii.gz")

# Output classes (the manifest's labels) and their display colours.
LABELS = [
    {"index": 0, "name": "background", "color": [0, 0, 0]},
    {"index": 1, "name": "CSF", "color": [60, 120, 255]},
    {"index": 2, "name": "grey matter", "color": [255, 170, 40]},
    {"index": 3, "name": "white matter", "color": [240, 240, 240]},
]
NUM_CLASSES = len(LABELS)


def normalise(img, mask=None):
    """Divide by the 99.5th percentile of the non-zero voxels and clip to [0, 1]."""
    img = np.clip(np.asarray(img, dtype=np.float32), 0, None)
    values = img[img > 0] if mask is None else img[mask]
    scale = np.percentile(values, 99.5) if values.size else 1.0
    return np.clip(img / max(scale, 1e-6), 0, 1)


def conv_block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018): the coarser decoder signal g decides how
    much of each skip-connection pixel x passes: alpha = sigmoid(psi(relu(Wx x + Wg g)))."""

    def __init__(self, f_skip, f_gate, f_inter):
        super().__init__()
        self.wx = nn.Conv2d(f_skip, f_inter, 1, bias=False)
        self.wg = nn.Conv2d(f_gate, f_inter, 1, bias=True)
        self.psi = nn.Conv2d(f_inter, 1, 1, bias=True)

    def forward(self, x, g):
        a = F.relu(self.wx(x) + self.wg(g))
        alpha = torch.sigmoid(self.psi(a))
        return x * alpha, alpha


class AttentionUNet(nn.Module):
    """2D Attention U-Net, three poolings (input sides must be multiples of 8). Returns
    class probabilities and the finest attention gate's coefficients, masked to the head."""

    def __init__(self, width=16, classes=NUM_CLASSES):
        super().__init__()
        c = [width, width * 2, width * 4, width * 8]
        self.e0, self.e1, self.e2 = conv_block(1, c[0]), conv_block(c[0], c[1]), conv_block(c[1], c[2])
        self.bottom = conv_block(c[2], c[3])
        self.up2, self.up1, self.up0 = (nn.ConvTranspose2d(c[i + 1], c[i], 2, stride=2) for i in (2, 1, 0))
        self.g2, self.g1, self.g0 = (AttentionGate(c[i], c[i], max(c[i] // 2, 8)) for i in (2, 1, 0))
        self.d2, self.d1, self.d0 = (conv_block(2 * c[i], c[i]) for i in (2, 1, 0))
        self.head = nn.Conv2d(c[0], classes, 1)

    def forward(self, x):
        s0 = self.e0(x)
        s1 = self.e1(F.max_pool2d(s0, 2))
        s2 = self.e2(F.max_pool2d(s1, 2))
        b = self.bottom(F.max_pool2d(s2, 2))
        u = self.up2(b)
        a2, _ = self.g2(s2, u)
        u = self.d2(torch.cat([a2, u], 1))
        u = self.up1(u)
        a1, _ = self.g1(s1, u)
        u = self.d1(torch.cat([a1, u], 1))
        u = self.up0(u)
        a0, alpha = self.g0(s0, u)
        u = self.d0(torch.cat([a0, u], 1))
        logits = self.head(u)
        # Attention outside the head (air) carries no meaning: zero it where the input is dark.
        head = (F.max_pool2d(x, 5, stride=1, padding=2) > 0.02).to(alpha.dtype)
        return logits, alpha * head


class Exported(nn.Module):
    """The ONNX graph: probs (softmax) and attention, both at input size."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        logits, attention = self.net(image)
        return torch.softmax(logits, dim=1), attention


def load_model(path):
    net = AttentionUNet()
    net.load_state_dict(torch.load(path, map_location="cpu"))
    net.eval()
    return net
