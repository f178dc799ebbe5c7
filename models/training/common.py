"""Shared pieces of Focal's model training: the network, its training contrasts (paths and
the label scheme live in anatomy.py)."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from anatomy import (  # noqa: F401  (re-exported: the scripts import them from here)
    CACHE,
    DATA,
    MNI,
    MRICRON,
    ITK,
    LABELS,
    NUM_CLASSES,
    SLOTS,
    CONTEXT,
    GEN,
    GEN_LABELS,
    TARGET,
    DEEP_BOX,
    DEEP_MM,
    DEEP_GM_P,
    load_mni_labels,
)


def random_contrast(r):
    """Mean and spread of intensity per generative label: MR-like orderings of CSF, GM and WM
    (T1-, T2-, FLAIR/PD-like) with random values for the other tissues, or all random."""
    if r.random() < 0.5:
        # MR-like orderings of brain tissue with random spread; other tissue random.
        mu = r.uniform(0, 1, GEN_LABELS)
        csf, gm, wm = np.sort(r.uniform(0.05, 0.95, 3))
        kind = r.random()
        if kind < 0.5:  # T1-like: CSF < GM < WM, fat and marrow bright
            mu[1:4] = csf, gm, wm
            mu[GEN["fat"]] = r.uniform(0.6, 1.0)
            mu[GEN["marrow"]] = r.uniform(0.4, 1.0)
        elif kind < 0.8:  # T2-like: WM < GM < CSF, fluid bright
            mu[1:4] = wm, gm, csf
            mu[GEN["fluid"]] = r.uniform(0.6, 1.0)
        else:  # FLAIR/PD-like: CSF dark or mid, GM above WM
            mu[1:4] = r.uniform(0.02, 0.5), wm, gm
        mu[GEN["bone"]] = r.uniform(0, 0.15)
        mu[GEN["air_inside"]] = r.uniform(0, 0.08)
        mu[GEN["deep_gm"]] = mu[2] + r.uniform(0, 0.9) * (mu[3] - mu[2])  # between grey and white
    else:
        mu = r.uniform(0, 1, GEN_LABELS)
    mu[0] = r.uniform(0, 0.08)
    sd = r.uniform(0, 0.06, GEN_LABELS)
    return mu.astype(np.float32), sd.astype(np.float32)


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


class Up(nn.Module):
    """A 3x3 convolution then bilinear upsampling: no transposed convolution, so no
    checkerboard pattern in the decoder or in the attention it gates."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x):
        return F.interpolate(self.conv(x), scale_factor=2, mode="bilinear", align_corners=False)


class AttentionGate(nn.Module):
    """Additive attention gate on a skip connection (Oktay et al. 2018)."""

    def __init__(self, f_skip, f_gate, f_inter):
        super().__init__()
        self.wx = nn.Conv2d(f_skip, f_inter, 1, bias=False)
        self.wg = nn.Conv2d(f_gate, f_inter, 1, bias=True)
        self.psi = nn.Conv2d(f_inter, 1, 1, bias=True)

    def forward(self, x, g):
        return x * torch.sigmoid(self.psi(F.relu(self.wx(x) + self.wg(g))))


class ModalityFusion(nn.Module):
    """Encodes each modality slot (its slice and neighbours) with shared weights and fuses the
    slots with per-pixel softmax weights over the slots that are present. A slot is absent
    where its input is exactly zero (a missing series, or outside its coverage)."""

    def __init__(self, width):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(CONTEXT, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.score = nn.Sequential(nn.Conv2d(width + CONTEXT, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 1, 1))

    def forward(self, x, present_in=None):
        """present_in: where to read which slots are present (default x itself; the input
        gate's filler would otherwise make an absent slot look present)."""
        n, _, h, w = x.shape
        src = x if present_in is None else present_in
        feats, logits, present = [], [], []
        for m in range(SLOTS):
            xm = x[:, m * CONTEXT : (m + 1) * CONTEXT]
            f = self.stem(xm)
            feats.append(f)
            logits.append(self.score(torch.cat([f, xm], 1)))
            sm = src[:, m * CONTEXT : (m + 1) * CONTEXT]
            p = F.max_pool2d((sm.abs().amax(1, keepdim=True) > 0).to(x.dtype), 5, stride=1, padding=2)
            present.append(p if m else torch.ones_like(p))  # slot 0 is always the analysed series
        logits = torch.cat(logits, 1)
        present = torch.cat(present, 1)
        weights = torch.softmax(logits - 1e4 * (1 - present), 1)
        fused = sum(weights[:, m : m + 1] * feats[m] for m in range(SLOTS))
        return fused, weights


class SpatialGate(nn.Module):
    """Which pixels the segmentation may see: a smooth map (computed at 1/4 resolution and
    upsampled bilinearly) that multiplies the fused features before the U-Net. Trained with a
    sparsity cost, it must keep what the labels need and may drop the rest, so deleting
    highly attended pixels changes the labels and deleting unattended ones does not."""

    def __init__(self, width, fine=False):
        super().__init__()
        if fine:
            # Model 3.2: at full resolution (dilated convolutions for context), so the gate can
            # keep a tissue edge and drop the uniform inside of a structure next to it.
            self.fine = nn.Sequential(
                nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=4, dilation=4), nn.ReLU(inplace=True),
                nn.Conv2d(width, 1, 3, padding=1),
            )
            nn.init.constant_(self.fine[-1].bias, 3.0)  # starts open, as the coarse gate it replaces ended
        else:
            self.net = nn.Sequential(
                nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(2 * width, 2 * width, 3, padding=2, dilation=2), nn.ReLU(inplace=True),
                nn.Conv2d(2 * width, 1, 3, padding=1),
            )

    def forward(self, f):
        if hasattr(self, "fine"):
            return torch.sigmoid(self.fine(f))
        logit = F.interpolate(self.net(f), size=f.shape[-2:], mode="bilinear", align_corners=False)
        return torch.sigmoid(logit)


def hashed_noise(ref):
    """Standard normal values fixed by pixel position and channel (integer hashing, then
    Box-Muller), shaped like `ref`: deterministic on every runtime and device."""
    n, c, h, w = ref.shape
    yy = torch.arange(h, device=ref.device).view(1, 1, h, 1)
    xx = torch.arange(w, device=ref.device).view(1, 1, 1, w)
    cc = torch.arange(c, device=ref.device).view(1, c, 1, 1)
    m = 2147483647  # 2^31 - 1: the minimal standard generator's modulus
    k = (xx * 73856093 + yy * 19349663 + cc * 83492791 + 1) % m
    k1 = (k * 48271) % m
    k2 = (k1 * 48271) % m
    u1 = (k1.to(ref.dtype) + 1.0) / 2147483648.0
    u2 = k2.to(ref.dtype) / 2147483648.0
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(6.283185307179586 * u2)
    return z.expand(n, c, h, w)


NO_SIGNAL_REACH = 7  # pixels


def image_statistics(x):
    """Each channel's mean and spread over the image's non-zero pixels."""
    nz = (x != 0).to(x.dtype)
    count = nz.sum((2, 3), keepdim=True).clamp(min=1)
    mean = (x * nz).sum((2, 3), keepdim=True) / count
    std = (((x - mean) * nz) ** 2).sum((2, 3), keepdim=True).div(count).sqrt()
    return mean, std


def input_filler(x, training, stats=None):
    """What the input gate puts in place of what it does not let through: noise with each
    channel's mean and spread over the image's non-zero pixels (random while training, a fixed
    hashed pattern at inference); with `stats` (mean, std), those fixed values instead, so
    that what the gate hides cannot reach the labels through the image's statistics either
    (Model 3.3: deleting pixels the gate holds back changed 8-20 % of the labels because it
    moved the filler's mean and spread everywhere). Where there is no signal at all (no non-zero value within
    NO_SIGNAL_REACH pixels: outside the scan, a masked background, an absent slot) it stays
    zero, as there is nothing to hide there; a zero inside the image is a value like any
    other, hidden as the others are."""
    nz = (x != 0).to(x.dtype)
    mean, std = image_statistics(x) if stats is None else stats
    noise = torch.randn_like(x) if training else hashed_noise(x)
    k = 2 * NO_SIGNAL_REACH + 1
    signal = F.max_pool2d(nz, k, stride=1, padding=NO_SIGNAL_REACH)
    return (mean + std * noise) * signal


class FocalNet(nn.Module):
    """Multi-modal 2.5D Attention U-Net: modality fusion, a spatial input gate, then a U-Net
    with three poolings (sides must be multiples of 8) and attention gates on its skips.

    The gate replaces what it does not let through by the features' mean, plus noise of the
    features' spread while training (the information-bottleneck idea, Schulz et al. 2020):
    a scale-down alone would be undone by the batch normalisation that follows, so without
    the noise a low gate would cost the segmentation nothing and mean nothing."""

    def __init__(self, width=16, classes=NUM_CLASSES, noise_filler=True, fine_gate=False, input_gate=False,
                 fixed_filler=False):
        super().__init__()
        # Model 3.3: the input gate's filler has fixed statistics (running averages of the
        # training images' own, per input channel), not the image's.
        self.fixed_filler = fixed_filler
        if fixed_filler:
            self.register_buffer("filler_mean", torch.full((1, SLOTS * CONTEXT, 1, 1), 0.35))
            self.register_buffer("filler_std", torch.full((1, SLOTS * CONTEXT, 1, 1), 0.2))
        # Model 3.2: the gate acts on the input pixels (every slot and neighbour slice), so the
        # segmentation sees nothing of a pixel but what the gate lets through, and the
        # attention map is exactly the share of each pixel's values the labels could use.
        self.input_gate = input_gate
        if input_gate:  # marks the architecture in saved weights (load_model reads it)
            self.register_buffer("input_gate_marker", torch.ones(1))
        c = [width, width * 2, width * 4, width * 8]
        # Stage 1 of the shipped model was trained without the filler (a plain multiplicative gate).
        self.noise_filler = noise_filler
        self.fusion = ModalityFusion(c[0])
        self.gate = SpatialGate(c[0], fine=fine_gate)
        self.register_buffer("feature_mean", torch.zeros(1, c[0], 1, 1))
        self.register_buffer("feature_std", torch.ones(1, c[0], 1, 1))
        self.e0, self.e1, self.e2 = conv_block(c[0], c[0]), conv_block(c[0], c[1]), conv_block(c[1], c[2])
        self.bottom = conv_block(c[2], c[3])
        self.up2, self.up1, self.up0 = (Up(c[i + 1], c[i]) for i in (2, 1, 0))
        self.g2, self.g1, self.g0 = (AttentionGate(c[i], c[i], max(c[i] // 2, 8)) for i in (2, 1, 0))
        self.d2, self.d1, self.d0 = (conv_block(2 * c[i], c[i]) for i in (2, 1, 0))
        self.head = nn.Conv2d(c[0], classes, 1)

    def forward(self, x):
        fused, modality = self.fusion(x)
        attention = self.gate(fused)
        if self.input_gate:
            # The gate's filler on the input: the U-Net sees each pixel only as far as the gate
            # lets it through (and the modality weights it uses are those of what it sees).
            stats = None
            if self.fixed_filler:
                if self.training:
                    with torch.no_grad():
                        m, sd = image_statistics(x)
                        # Each channel's average over the images that hold it; a channel no
                        # image of the batch holds (an absent second slot) keeps its value.
                        present = (x != 0).flatten(2).any(2).to(x.dtype)[..., None, None]  # [N, C, 1, 1]
                        count = present.sum(0, keepdim=True)
                        held = count > 0
                        for buffer, value in ((self.filler_mean, m), (self.filler_std, sd)):
                            average = (value * present).sum(0, keepdim=True) / count.clamp(min=1)
                            buffer.lerp_(torch.where(held, average, buffer), 0.05)
                stats = (self.filler_mean, self.filler_std)
            gated = attention * x + (1 - attention) * input_filler(x, self.training, stats)
            features, modality = self.fusion(gated, present_in=x)
        else:
            if not self.noise_filler:
                filler = torch.zeros_like(fused)
            elif self.training:
                with torch.no_grad():
                    self.feature_mean.lerp_(fused.mean((0, 2, 3), keepdim=True), 0.05)
                    self.feature_std.lerp_(fused.std((0, 2, 3), keepdim=True), 0.05)
                filler = self.feature_mean + self.feature_std * torch.randn_like(fused)
            else:
                # The same noise at inference, but a fixed pattern, so results are reproducible
                # (and the batch normalisation sees the statistics it was trained with).
                filler = self.feature_mean + self.feature_std * hashed_noise(fused)
            features = attention * fused + (1 - attention) * filler
        s0 = self.e0(features)
        s1 = self.e1(F.max_pool2d(s0, 2))
        s2 = self.e2(F.max_pool2d(s1, 2))
        u = self.bottom(F.max_pool2d(s2, 2))
        for up, gate, dec, skip in ((self.up2, self.g2, self.d2, s2), (self.up1, self.g1, self.d1, s1), (self.up0, self.g0, self.d0, s0)):
            u = up(u)
            u = dec(torch.cat([gate(skip, u), u], 1))
        return self.head(u), attention, modality


class Exported(nn.Module):
    """The ONNX graph: probs (softmax), attention (the spatial gate, zero outside the head)
    and modality_attention (weights over the slots, summing to 1 at every pixel)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        logits, attention, modality = self.net(image)
        centre = image[:, 1 : 2]  # slot 0's own slice
        head = (F.max_pool2d(centre, 5, stride=1, padding=2) > 0.02).to(attention.dtype)
        return torch.softmax(logits, dim=1), attention * head, modality


def load_model(path, strict=True, noise_filler=True, fixed_filler=None):
    """The network of a saved state, its architecture read from the state (fixed_filler: give
    it a fixed filler whether or not the state has one; its buffers then keep their start)."""
    state = torch.load(path, map_location="cpu")
    fine = any(k.startswith("gate.fine.") for k in state)
    fixed = "filler_mean" in state if fixed_filler is None else fixed_filler
    net = FocalNet(width=state["fusion.stem.0.weight"].shape[0], noise_filler=noise_filler, fine_gate=fine,
                   input_gate="input_gate_marker" in state, fixed_filler=fixed)
    net.load_state_dict(state, strict=strict)
    net.eval()
    return net
