#!/usr/bin/env python3
"""Gives a trained input-gate network (Model 3.2's design) a filler of fixed statistics.

3.2's input gate puts noise with the image's own mean and spread where it holds back. Deleting
pixels (the deletion test sets them to zero) moves that mean and spread, so the filler changes
everywhere, and the labels change even where only pixels the gate had closed were deleted
(m3n: deleting the least-attended fifth changed 8-16 % of the labels, more than the most-
attended). With fixed statistics what the gate hides cannot reach the labels at all. The values
are the mean over slabs of the MNI template (a training head) of each channel's non-zero mean
and spread, slot 1 (a second series, normalised the same way) given slot 0's.

usage: fix_filler.py IN.pt OUT.pt
"""
import sys

import nibabel as nib
import numpy as np
import torch

from anatomy import MNI
from common import image_statistics, load_model
from evaluate import slab_input
from quick_check import axial


def main():
    src, dst = sys.argv[1:3]
    net = load_model(src, strict=False, fixed_filler=True)
    template = axial(nib.load(MNI.format("t1")).get_fdata().astype(np.float32))
    stats = [image_statistics(torch.from_numpy(slab_input([template], k)[None].astype(np.float32)))
             for k in range(20, len(template) - 20, 4)]
    mean = torch.stack([m for m, _ in stats]).mean(0)
    std = torch.stack([s for _, s in stats]).mean(0)
    # Slot 1 (a second series, normalised the same way) as slot 0: the template has one series.
    half = mean.shape[1] // 2
    mean[:, half:], std[:, half:] = mean[:, :half], std[:, :half]
    net.filler_mean.copy_(mean)
    net.filler_std.copy_(std)
    print("filler mean", [round(v, 4) for v in mean.flatten().tolist()], "std", [round(v, 4) for v in std.flatten().tolist()])
    torch.save(net.state_dict(), dst)


if __name__ == "__main__":
    main()
