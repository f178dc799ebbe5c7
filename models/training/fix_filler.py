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
import sys, torch, numpy as np
sys.path.insert(0, '.')
from common import FocalNet, image_statistics
from quick_check import heads
from evaluate import slab_input
src, dst = sys.argv[1:3]
state = torch.load(src, map_location='cpu')
net = FocalNet(width=state["fusion.stem.0.weight"].shape[0], fine_gate=True, input_gate=True, fixed_filler=True)
missing, unexpected = net.load_state_dict(state, strict=False)
print('missing', missing, 'unexpected', unexpected)
name, vol, brain = heads()[0]
ms, ss = [], []
for k in range(20, len(vol) - 20, 4):
    x = torch.from_numpy(slab_input([vol], k)[None].astype(np.float32))
    m, s = image_statistics(x)
    ms.append(m); ss.append(s)
m = torch.stack(ms).mean(0); s = torch.stack(ss).mean(0)
print('mean', m.flatten().tolist(), 'std', s.flatten().tolist())
m[:, 3:] = m[:, :3]; s[:, 3:] = s[:, :3]  # slot 1 (a second series, normalised the same way) as slot 0
net.filler_mean.copy_(m); net.filler_std.copy_(s)
print('set', net.filler_mean.flatten().tolist(), net.filler_std.flatten().tolist())
torch.save(net.state_dict(), dst)
