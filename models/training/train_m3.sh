#!/usr/bin/env bash
# Model 3's slice network: deep grey matter as its own generative label, the gate's cost on
# head pixels that are not brain plus the share of its mass outside the brain.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PY:-$HOME/.cache/focal/train-venv/bin/python}
L=$HOME/.cache/focal/modeldata/ct-head-deepgm-labels.npz
# The history (FROM_SCRATCH=1 reruns it): stages m3a, m3b (candidate 3.1), and what was tried after.
if [ "${FROM_SCRATCH:-0}" = 1 ]; then
[ -f runs/m3a/training.json ] || $PY train.py --minutes 72 --max-steps 500 --out runs/m3a --seed 3511 --no-filler \
    --deep-gm --labels "$L" --sparsity-on non-brain
[ -f runs/m3b/training.json ] || $PY train.py --minutes 42 --out runs/m3b --init runs/m3a/model.pt --lr 1.3e-3 --ramp 0.1 --sparsity 0.3 \
    --sparsity-on non-brain --outside-share 1.0 --seed 3512 --deep-gm --labels "$L"
[ -f runs/m3b/brain-tissue.onnx ] || $PY export.py runs/m3b/model.pt runs/m3b/brain-tissue.onnx
# Stage 3 (candidate 3.1 failed the deletion test: with no cost inside the brain the gate opened
# over all of it and ranked nothing there): a cost on the whole head's mean as in 2.0, the
# outside share kept.
[ -f runs/m3c/training.json ] || $PY train.py --minutes 20 --out runs/m3c --init runs/m3b/model.pt --lr 6e-4 --ramp 0.1 --sparsity 0.3 \
    --sparsity-on head --outside-share 1.0 --seed 3513 --deep-gm --labels "$L"
$PY export.py runs/m3c/model.pt runs/m3c/brain-tissue.onnx
# Tried for 3.2 (runs/m3d, stopped at 500 steps): the spatial gate at full resolution on the
# features, its cost on the whole head's mean. On the template at 250 and 500 steps the
# deletion test still failed (top 0.30 / 0.36 against random blocks 0.41 / 0.46).
# Candidate 3.2: the gate on the input pixels (their values replaced by noise of the image's
# own statistics where it holds back), at full resolution, started afresh and open, its cost
# on the whole head's mean: what it closes, the labels cannot use, so deleting it cannot matter.
# Stopped at step 600 (the gate's mean over the head fell to 0.02 and the segmentation's loss
# rose); its step-500 weights (kept as runs/m3e/model_500.pt) passed the deletion test on the
# template, noisy and 7 mm (top 0.048 / 0.056 / 0.567 against random blocks 0.002 / 0.003 /
# 0.064) but labelled the template's zero background: the gate closed over exact zeros, which
# training never showed around a head, and the filler turned them into noise.
[ -f runs/m3e/model_500.pt ] || { $PY train.py --minutes 35 --max-steps 500 --out runs/m3e --init runs/m3b/model.pt --lr 1e-3 --ramp 0.15 --sparsity 0.3 \
    --sparsity-on head --outside-share 1.0 --seed 3515 --deep-gm --labels "$L" --fine-gate --input-gate && cp runs/m3e/model.pt runs/m3e/model_500.pt; }
# Then (the filler now leaves regions without signal alone: zero where no non-zero value lies
# within 7 pixels) a third of the examples with exact zeros around the head, a lighter cost.
[ -f runs/m3f/model_500.pt ] || { $PY train.py --minutes 25 --max-steps 500 --out runs/m3f --init runs/m3e/model_500.pt --lr 5e-4 --ramp 0.05 --sparsity 0.1 \
    --sparsity-on head --outside-share 1.0 --seed 3516 --deep-gm --labels "$L" --fine-gate --input-gate --zero-air 0.3 && cp runs/m3f/model.pt runs/m3f/model_500.pt; }
# Stopped at 500 steps: on the template top > random blocks everywhere (0.050 / 0.067 / 0.292
# against 0.023 / 0.035 / 0.151) but the network labelled scalp as tissue (its own brain Dice
# 0.88, 3.1's 0.94): with the gate shut on everything outside the brain it cannot see the scalp
# it should reject, and deleting those labelled, unattended pixels moved other labels (bottom
# 0.112). Then: a lighter outside-share cost, so the gate may look just past the brain's edge.
[ -f runs/m3g/training.json ] || $PY train.py --minutes 20 --out runs/m3g --init runs/m3f/model_500.pt --lr 4e-4 --ramp 0.05 --sparsity 0.1 \
    --sparsity-on head --outside-share 0.3 --seed 3517 --deep-gm --labels "$L" --fine-gate --input-gate --zero-air 0.3
[ -f runs/m3g/brain-tissue.onnx ] || $PY export.py runs/m3g/model.pt runs/m3g/brain-tissue.onnx
fi
# The runs above were never committed and were lost with their machine; from here every run's
# weights are committed under checkpoints/ (2 MB each). Candidate 3.1's network is rebuilt from
# its ONNX (recover_checkpoint.py: the normalisations folded into the convolutions, so fine-tune
# with --freeze-bn), then m3e and m3f's recipe in one run: the input gate with the region filler,
# a third of the examples with zero air, the whole head's gate mean as the cost, and a lighter
# outside share so the gate may look just past the brain's edge at the scalp it must reject.
[ -f checkpoints/m3b-recovered.pt ] || { mkdir -p checkpoints; $PY recover_checkpoint.py ../candidates/brain-tissue-3.onnx checkpoints/m3b-recovered.pt; }
# One fine-tuning run from m3h on: RUN INIT [train.py arguments that vary]. The arguments all of
# them share are here; then its ONNX, its first look on the training heads (quick_check.py),
# and its weights committed under checkpoints/.
fine_tune() {
    local run=$1 init=$2
    shift 2
    [ -f "runs/$run/training.json" ] || $PY train.py --minutes 150 --out "runs/$run" --init "$init" --freeze-bn \
        --sparsity-on head --outside-share 0.3 --deep-gm --labels "$L" --fine-gate --input-gate --zero-air 0.3 "$@"
    [ -f "runs/$run/brain-tissue.onnx" ] || $PY export.py "runs/$run/model.pt" "runs/$run/brain-tissue.onnx"
    [ -f "runs/$run/quick.json" ] || $PY quick_check.py "runs/$run/brain-tissue.onnx" --json "runs/$run/quick.json"
    [ -f "checkpoints/$run.pt" ] || cp "runs/$run/model.pt" "checkpoints/$run.pt"
}
fine_tune m3h checkpoints/m3b-recovered.pt --max-steps 500 --lr 1e-3 --ramp 0.15 --sparsity 0.2 --seed 3518
# m3h at step 500 (quick_check.py, training heads): the gate closed to a mean of 0.18 over the
# head with 10 % of its mass outside the brain; deletion test top / bottom / random blocks
# 0.273 / 0.073 / 0.344 on the template, 0.240 / 0.061 / 0.308 noisy, 0.546 / 0.178 / 0.491 at
# 7 mm: the least attended now matter least, but random 8x8 blocks still beat the top fifth
# on the 2 mm heads; brain Dice 0.914 (3.1's network alone 0.861). Weights: checkpoints/m3h.pt.
# Then: a stronger cost, so that what stays open is the thin context the labels rest on.
fine_tune m3i checkpoints/m3h.pt --max-steps 250 --lr 5e-4 --ramp 0.1 --sparsity 0.5 --seed 3519
# m3i at step 250: deletion test top / bottom / random blocks 0.313 / 0.080 / 0.215 on the
# template (passed), 0.376 / 0.114 / 0.311 noisy (passed), 0.362 / 0.100 / 0.366 at 7 mm
# (failed by 0.004); brain Dice 0.946 / 0.941 / 0.917; zero background labelled 1.9 % (3.1:
# 8.1 %). Weights: checkpoints/m3i.pt. Then 250 more steps, a little more cost, a lower rate.
fine_tune m3j checkpoints/m3i.pt --max-steps 250 --lr 3e-4 --ramp 0.1 --sparsity 0.6 --seed 3520
# m3j at step 250: deletion test top / bottom / random blocks 0.180 / 0.070 / 0.139 on the
# template, 0.223 / 0.096 / 0.186 noisy, 0.276 / 0.115 / 0.265 at 7 mm: passed on all three,
# so by the card's rule it is candidate 3.2's network (models/candidates/brain-tissue-3.2.onnx);
# its own brain Dice fell to 0.849 (the extractor sets the brain in the candidate's pipeline).
# Held out, m3j failed the deletion test on the ITK head (2 x 2 x 3 mm, 8-bit; MODEL_CARD.md).
# quick_check.py now has a training head like it, the template acquired coarse (2 x 2 x 3 mm,
# 8-bit): m3j fails there too (top 0.440 / bottom 0.236 / random 0.516). Then: a third of the
# slot images acquired coarse in training (--coarse 0.3).
fine_tune m3k checkpoints/m3j.pt --max-steps 250 --lr 3e-4 --ramp 0.1 --sparsity 0.6 --seed 3521 --coarse 0.3
# m3k at step 250: top / bottom / random blocks 0.227 / 0.102 / 0.214 template (passed),
# 0.262 / 0.139 / 0.263 noisy, 0.251 / 0.122 / 0.254 at 7 mm, 0.340 / 0.213 / 0.416 coarse
# (failed on three): coarse images alone do not fix it and cost the others. Weights:
# checkpoints/m3k.pt. Then from m3j: the coarse images with a stronger cost.
fine_tune m3l checkpoints/m3j.pt --max-steps 200 --lr 3e-4 --ramp 0.1 --sparsity 0.9 --seed 3522 --coarse 0.3
# m3l at step 200: 0.097 / 0.053 / 0.075 template, 0.100 / 0.070 / 0.076 noisy, 0.178 / 0.092 /
# 0.159 at 7 mm (passed), 0.369 / 0.195 / 0.391 coarse (failed, closer: 0.94 of random). The
# stronger cost makes every deletion matter less. Weights: checkpoints/m3l.pt. Then: more so,
# and half the slot images coarse.
fine_tune m3m checkpoints/m3l.pt --max-steps 200 --lr 3e-4 --ramp 0.1 --sparsity 1.2 --seed 3523 --coarse 0.5
# m3m at step 200: 0.059 / 0.076 / 0.029 template and 0.046 / 0.095 / 0.028 noisy (failed: the
# least attended now matter more than the most), 0.141 / 0.124 / 0.076 at 7 mm and 0.222 /
# 0.148 / 0.183 coarse (passed); the gate's mean touched 0 in training and the brain Dice fell to
# 0.78. Too strong a cost. Weights: checkpoints/m3m.pt. Between m3l (cost 0.9) and m3m (1.2) is
# where to look next, on all four heads.
# Between the two (session of 2026-12-06, second): from m3l, cost 1.05, 40 % coarse; then from
# m3l, cost 0.9 with half the images coarse. 3.3's network is the first to pass on all four.
fine_tune m3n checkpoints/m3l.pt --max-steps 200 --lr 3e-4 --ramp 0.1 --sparsity 1.05 --seed 3524 --coarse 0.4
fine_tune m3o checkpoints/m3l.pt --max-steps 200 --lr 3e-4 --ramp 0.1 --sparsity 0.9 --seed 3525 --coarse 0.5
# m3n at step 200: 0.071 / 0.091 / 0.048 template, 0.070 / 0.123 / 0.047 noisy (the least
# attended matter more than the most), 0.148 / 0.140 / 0.128 at 7 mm (passed), 0.238 / 0.181 /
# 0.266 coarse: failed on three, as m3m. m3o at step 200: 0.252 / 0.199 / 0.239 template
# (passed), 0.190 / 0.198 / 0.213 noisy, 0.121 / 0.153 / 0.146 at 7 mm, 0.169 / 0.154 / 0.221
# coarse: failed on three, brain Dice down to 0.72. Neither is a candidate; weights in
# checkpoints/ (m3n.pt, m3o.pt). Cost and coarse share alone do not get all four heads.
# Why the strong costs fail: the input gate's filler takes the image's own mean and spread, so
# deleting pixels (zeros) moves the filler everywhere. Deleting the least-attended fifth of m3n
# (gate 0.000 there, before and after) still changed 8 % of the other labels on the template
# and 17 % on the coarse head. m3p: m3j's weights, untrained further, with the filler's
# statistics fixed (fix_filler.py: the template's slab means, slot 1 as slot 0).
[ -f checkpoints/m3p.pt ] || $PY fix_filler.py checkpoints/m3j.pt checkpoints/m3p.pt
[ -f ../candidates/brain-tissue-3.3.onnx ] || $PY export.py checkpoints/m3p.pt ../candidates/brain-tissue-3.3.onnx
[ -f checkpoints/m3p-quick.json ] || $PY quick_check.py ../candidates/brain-tissue-3.3.onnx --json checkpoints/m3p-quick.json
# m3p passes the deletion test on all four training heads and, through focal analyze, on all
# six held-out heads, so 3.3 shipped (MODEL_CARD.md). But it was never trained with the fixed
# filler: alone, on a whole head (the sample), it labels the whole head brain, mostly white
# (brain Dice 0.64; skull-stripped 0.84): the template's filler statistics do not fit a slice
# with scalp and skull. In 3.3 deepbet sets the brain and the tissue model the classes. m3q:
# m3p fine-tuned with the fixed filler (its statistics become running averages of the training
# images'), as m3j was trained.
fine_tune m3q checkpoints/m3p.pt --max-steps 250 --lr 3e-4 --ramp 0.1 --sparsity 0.6 --seed 3526 --coarse 0.3 --fixed-filler
# m3q at step 250: 0.168 / 0.085 / 0.146 template, 0.150 / 0.083 / 0.137 noisy, 0.117 / 0.093 /
# 0.116 coarse (passed), 0.078 / 0.082 / 0.070 at 7 mm (failed: bottom over top by 0.004);
# brain Dice on the template 0.79 (m3p 0.84). Not a candidate. Weights: checkpoints/m3q.pt.
