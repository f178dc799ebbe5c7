//! The tissue model's tests: phantoms with known tissues, the bias field, the deep component.

use super::gaussian::invert;
use super::*;

fn spec() -> TissueEmSpec {
    TissueEmSpec {
        prior_weight: 0.25,
        mrf_beta: 0.3,
        bias_sigma_mm: 8.0,
        iterations: 15,
        deep_gm_mm: None,
        deep_gm_atlas: None,
        exclude_outliers: None,
        fluid_end_from_rim: false,
        contrast_grey_darker: false,
        description: None,
    }
}

const SLOTS: TissueSlots = TissueSlots {
    label: [1, 2, 3],
    channel: [1, 2, 3],
    classes: 4,
};

/// A 40³ "head": a ball of brain with white matter inside, folded grey matter (a
/// wavy shell) and CSF in a central ventricle and at the surface, under a 30 % bias
/// ramp and noise; the network's probabilities are a wrong rim prior (grey outside,
/// white inside, no CSF), as Model 2's were.
fn phantom(contrast: [f32; 3]) -> (Vec<u8>, Vec<f32>, Vec<f32>, Vec<u8>) {
    let s = 40usize;
    let n = s * s * s;
    let (mut labels, mut values, mut probs, mut truth) =
        (vec![0u8; n], vec![0f32; n], vec![0f32; 4 * n], vec![0u8; n]);
    let mut seed = 12345u64;
    let mut noise = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    for z in 0..s {
        for y in 0..s {
            for x in 0..s {
                let v = (z * s + y) * s + x;
                let (fx, fy, fz) = (x as f32 - 19.5, y as f32 - 19.5, z as f32 - 19.5);
                let r = (fx * fx + fy * fy + fz * fz).sqrt();
                if r > 17.0 {
                    continue;
                }
                let angle = fy.atan2(fx);
                let fold = 12.0 + 2.5 * (5.0 * angle).sin();
                let t = if r < 3.5 || r > 15.5 {
                    0
                } else if r > fold {
                    1
                } else {
                    2
                };
                truth[v] = t as u8 + 1;
                labels[v] = 3;
                let bias = 0.85 + 0.3 * x as f32 / s as f32;
                values[v] = (contrast[t] + 6.0 * noise()) * bias;
                let k = z;
                let i = y * s + x;
                let plane = s * s;
                let rim = if r > 13.0 { 0.8 } else { 0.2 };
                probs[(k * 4 + 2) * plane + i] = rim;
                probs[(k * 4 + 3) * plane + i] = 1.0 - rim;
            }
        }
    }
    (labels, values, probs, truth)
}

/// The step on a phantom's 40³ grid of 1 mm voxels.
fn fit_phantom(
    labels: &mut [u8],
    probs: &mut [f32],
    channels: &[&[f32]],
    spec: &TissueEmSpec,
) -> Option<TissueFit> {
    fit_tissue(labels, probs, channels, [40, 40, 40], [1.0; 3], SLOTS, spec, None, None, ClassHints::default()).map(|(fit, _)| fit)
}

fn agreement(labels: &[u8], truth: &[u8]) -> f64 {
    let (mut same, mut all) = (0, 0);
    for (a, b) in labels.iter().zip(truth) {
        if *b != 0 {
            all += 1;
            same += usize::from(a == b);
        }
    }
    same as f64 / all as f64
}

#[test]
fn tissues_follow_the_image_not_the_rim_prior_on_t1_and_t2_contrast() {
    for contrast in [[30.0, 80.0, 110.0], [200.0, 110.0, 70.0]] {
        let (mut labels, values, mut probs, truth) = phantom(contrast);
        let before = agreement(&labels, &truth);
        let fit = fit_phantom(&mut labels, &mut probs, &[&values], &spec()).expect("fit");
        let after = agreement(&labels, &truth);
        assert!(
            after > 0.93,
            "{contrast:?}: {after:.3} of voxels right after the fit (before {before:.3}); {fit:?}"
        );
        // The tissue order follows the contrast: CSF darkest on T1, brightest on T2.
        assert!((fit.means[0] < fit.means[2]) == (contrast[0] < contrast[2]), "{fit:?}");
        // Probabilities are the posterior: they sum to one and agree with the labels.
        for v in 0..labels.len() {
            if labels[v] != 0 {
                let (k, i) = (v / 1600, v % 1600);
                let p: Vec<f32> = (0..4).map(|c| probs[(k * 4 + c) * 1600 + i]).collect();
                assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
                let best = (0..4).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
                assert_eq!(best as u8, labels[v]);
            }
        }
    }
}

#[test]
fn the_bias_field_is_found_and_removed() {
    let (mut labels, values, mut probs, truth) = phantom([30.0, 80.0, 110.0]);
    let mut none = spec();
    none.bias_sigma_mm = 0.0;
    let mut flat = labels.clone();
    let mut flat_probs = probs.clone();
    fit_phantom(&mut flat, &mut flat_probs, &[&values], &none).expect("fit");
    let fit = fit_phantom(&mut labels, &mut probs, &[&values], &spec()).expect("fit");
    // The phantom's ramp spans x0.85-1.15 over the volume (x0.89-1.11 over the brain).
    assert!(fit.bias_range[0] < 0.94 && fit.bias_range[1] > 1.06, "{fit:?}");
    assert!(agreement(&labels, &truth) >= agreement(&flat, &truth), "{fit:?}");
}

#[test]
fn a_second_series_is_used_and_tiny_brains_are_left_alone() {
    let (mut labels, values, mut probs, truth) = phantom([30.0, 80.0, 110.0]);
    let (_, second, _, _) = phantom([200.0, 110.0, 70.0]);
    let fit = fit_phantom(&mut labels, &mut probs, &[&values, &second], &spec()).expect("fit");
    assert_eq!(fit.channels, 2);
    assert!(agreement(&labels, &truth) > 0.95, "{fit:?}");
    assert!(fit.describe().contains("(2 series)"), "{}", fit.describe());
    let mut few = vec![0u8; 1000];
    few[..10].fill(3);
    let mut p = vec![0f32; 4000];
    let v = vec![1f32; 1000];
    assert!(fit_tissue(&mut few, &mut p, &[&v], [10, 10, 10], [1.0; 3], SLOTS, &spec(), None, None, ClassHints::default()).is_none());
    assert_eq!(few.iter().filter(|&&l| l == 3).count(), 10);
}

/// A bright blob in the phantom's white matter departs from healthy tissue by many spreads,
/// is left out of the tissue statistics (white matter's mean stays), and the phantom's own
/// tissues and boundaries (partial volume, the bias ramp) do not depart.
#[test]
fn a_bright_blob_departs_and_healthy_tissue_and_its_boundaries_do_not() {
    let (mut labels, mut values, mut probs, _) = phantom([30.0, 70.0, 100.0]);
    let s = 40usize;
    let blob = |v: usize| {
        let (x, y, z) = ((v % s) as f32 - 19.5, ((v / s) % s) as f32 - 19.5, (v / (s * s)) as f32 - 19.5);
        ((x - 7.0).powi(2) + y * y + z * z).sqrt() <= 3.0
    };
    let healthy_fit = fit_phantom(&mut labels.clone(), &mut probs.clone(), &[&values], &spec()).expect("fitted");
    for (v, x) in values.iter_mut().enumerate() {
        if blob(v) {
            *x = 150.0 * (0.85 + 0.3 * (v % s) as f32 / s as f32);
        }
    }
    let robust = TissueEmSpec { exclude_outliers: Some(3.0), ..spec() };
    let (fit, departure) =
        fit_tissue(&mut labels, &mut probs, &[&values], [40, 40, 40], [1.0; 3], SLOTS, &robust, None, Some(DepartureSpec { bordering: false }), ClassHints::default()).expect("fitted");
    let departure = departure.expect("asked for");
    let (mut inside, mut outside): (Vec<f32>, Vec<f32>) = (Vec::new(), Vec::new());
    for (&v, &score) in departure.voxels.iter().zip(&departure.score) {
        if blob(v as usize) { inside.push(score) } else { outside.push(score) }
    }
    inside.sort_by(f32::total_cmp);
    outside.sort_by(f32::total_cmp);
    let median = inside[inside.len() / 2];
    let healthy_top = outside[outside.len() * 999 / 1000];
    assert!(median > 5.0, "the blob's median departure {median}");
    assert!(healthy_top < 3.0, "99.9 % of healthy voxels under 3 spreads, not {healthy_top}");
    assert!(
        (fit.means[2] - healthy_fit.means[2]).abs() < 1.5,
        "white matter's mean moved from {} to {}",
        healthy_fit.means[2],
        fit.means[2]
    );
}

#[test]
fn settings_out_of_range_are_named() {
    let mut s = spec();
    assert!(s.problem().is_none());
    s.prior_weight = 1.5;
    assert!(s.problem().expect("problem").contains("prior_weight"));
    s = spec();
    s.bias_sigma_mm = 2.0;
    assert!(s.problem().expect("problem").contains("bias_sigma_mm"));
    s = spec();
    s.deep_gm_mm = Some([12.0, 8.0]);
    assert!(s.problem().expect("problem").contains("deep_gm_mm"));
    s.deep_gm_mm = Some([8.0, 12.0]);
    assert!(s.problem().is_none());
}

#[test]
fn tissues_are_found_among_the_labels_by_name_or_named_as_missing() {
    let label = |index: u8, name: &str| super::super::manifest::Label {
        index,
        name: name.into(),
        color: [0; 3],
        expected_ml: None,
    };
    let labels = vec![
        label(0, "background"),
        label(5, "white matter"),
        label(1, "CSF"),
        label(2, "grey matter"),
    ];
    let found = TissueSlots::find(&labels, 4).expect("all three");
    assert_eq!((found.label, found.channel, found.classes), ([1, 2, 5], [2, 3, 1], 4));
    // A model with fewer output channels than the labels reach, and a missing tissue.
    assert_eq!(TissueSlots::find(&labels, 3).err(), Some(vec!["grey matter"]));
    assert_eq!(TissueSlots::find(&labels[..3], 4).err(), Some(vec!["grey matter"]));
}

#[test]
fn the_smoothed_field_keeps_smooth_fields_and_ignores_unweighted_values() {
    // A 60 x 60 x 40 brick of 2 x 2 x 3 mm voxels; every 7th voxel holds an outlier of
    // weight zero, which must not count.
    let dims = [60, 60, 40];
    let spacing = [2.0, 2.0, 3.0];
    let brain: Vec<u32> = (0..(60 * 60 * 40) as u32).collect();
    let weight: Vec<f64> = brain.iter().map(|&v| if v % 7 == 0 { 0.0 } else { 1.0 }).collect();
    let with_outliers = |f: &dyn Fn(u32) -> f64| -> Vec<f64> {
        brain.iter().map(|&v| if v % 7 == 0 { 5.0 } else { f(v) }).collect()
    };
    // A constant comes back everywhere, up to the edges (normalised convolution).
    let field = smooth_field(&brain, dims, spacing, 15.0, &with_outliers(&|_| 0.3), &weight);
    assert!(field.iter().all(|f| (f - 0.3).abs() < 1e-9));
    // A ramp comes back up to the edges (the trend), and a bump of 40 mm on it inside.
    let x_mm = |v: u32| (v % 60) as f64 * 2.0 + 1.0;
    let ramp = |v: u32| 0.1 * (x_mm(v) - 60.0) / 60.0;
    let field = smooth_field(&brain, dims, spacing, 15.0, &with_outliers(&ramp), &weight);
    let worst = brain
        .iter()
        .map(|&v| (field[v as usize] - ramp(v)).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-6, "largest error {worst}");
    let bump = |v: u32| ramp(v) + 0.05 * (-((x_mm(v) - 60.0) / 40.0).powi(2)).exp();
    let field = smooth_field(&brain, dims, spacing, 15.0, &with_outliers(&bump), &weight);
    let centre = brain.iter().filter(|&&v| (58.0..=62.0).contains(&x_mm(v)));
    let worst = centre.map(|&v| (field[v as usize] - bump(v)).abs()).fold(0.0, f64::max);
    assert!(worst < 0.01, "largest error at the bump's peak {worst}");
}

#[test]
fn small_matrices_are_inverted() {
    let m = [4.0, 1.0, 1.0, 3.0];
    let (inv, det) = invert(&m, 2);
    assert!((det - 11.0).abs() < 1e-9);
    assert!((inv[0] - 3.0 / 11.0).abs() < 1e-12 && (inv[1] + 1.0 / 11.0).abs() < 1e-12);
}

/// Distance of voxel `v` of the 40³ phantom from the deep nucleus's centre (in its white matter).
fn from_nucleus_centre(v: usize) -> f32 {
    let (x, y, z) = ((v % 40) as f32, ((v / 40) % 40) as f32, (v / 1600) as f32);
    ((x - 26.5).powi(2) + (y - 19.5).powi(2) + (z - 19.5).powi(2)).sqrt()
}

/// Puts a deep nucleus of radius 3.5 into the phantom's white matter: values between grey and
/// white matter (92 ± 3 under the phantom's bias ramp, noise from `seed`), and the network's
/// grey- and white-matter probabilities there `[grey, white]`. Returns where it lies.
fn add_nucleus(values: &mut [f32], probs: &mut [f32], truth: &[u8], mut seed: u64, [grey, white]: [f32; 2]) -> Vec<bool> {
    let (s, plane) = (40usize, 1600usize);
    let nucleus: Vec<bool> = (0..truth.len()).map(|v| truth[v] == 3 && from_nucleus_centre(v) < 3.5).collect();
    for v in (0..truth.len()).filter(|&v| nucleus[v]) {
        let (x, i, z) = (v % s, v % plane, v / plane);
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let noise = ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5;
        values[v] = (92.0 + 6.0 * noise) * (0.85 + 0.3 * x as f32 / s as f32);
        probs[(z * 4 + 2) * plane + i] = grey;
        probs[(z * 4 + 3) * plane + i] = white;
    }
    nucleus
}

/// Deep grey matter brighter than cortex (between grey and white matter, as the thalamus
/// and basal ganglia are on T1) with a network unsure there: one grey-matter Gaussian
/// leaves most of it to white matter; the deep component gives it to grey matter and keeps
/// the cortex and white matter as they were.
#[test]
fn a_deep_component_takes_deep_grey_matter_brighter_than_cortex() {
    let (labels, mut values, mut probs, truth) = phantom([30.0, 70.0, 110.0]);
    let nucleus = add_nucleus(&mut values, &mut probs, &truth, 99, [0.5, 0.5]);
    let n_nucleus = nucleus.iter().filter(|&&b| b).count();
    assert!(n_nucleus > 100, "{n_nucleus}");
    let grey_share = |deep: Option<[f64; 2]>| {
        let (mut l, mut p) = (labels.clone(), probs.clone());
        let spec = TissueEmSpec { deep_gm_mm: deep, ..spec() };
        let fit = fit_phantom(&mut l, &mut p, &[&values], &spec).expect("fitted");
        let grey = (0..l.len()).filter(|&v| nucleus[v] && l[v] == 2).count() as f64 / n_nucleus as f64;
        let rest = (0..l.len()).filter(|&v| truth[v] != 0 && !nucleus[v]);
        let (agree, total) = rest.fold((0, 0), |(a, t), v| (a + usize::from(l[v] == truth[v]), t + 1));
        (grey, agree as f64 / total as f64, fit)
    };
    let (without, rest_without, fit) = grey_share(None);
    assert!(fit.deep_gm_mean.is_none());
    let (with, rest_with, fit) = grey_share(Some([5.0, 9.0]));
    let deep_mean = fit.deep_gm_mean.expect("a deep component");
    assert!(fit.means[1] < deep_mean && deep_mean < fit.means[2], "{:?} deep {deep_mean}", fit.means);
    assert!(without < 0.4, "one grey-matter Gaussian: {without:.2} of the nucleus grey");
    assert!(with > 0.8, "with the deep component: {with:.2} of the nucleus grey");
    assert!(rest_with > rest_without - 0.02, "elsewhere {rest_with:.3} against {rest_without:.3}");
    assert!(fit.describe().contains("deep grey matter"), "{}", fit.describe());
}

/// The same nucleus with a network that calls it white matter (0.9): without a deep component
/// it stays white; with one placed by an atlas, which draws on white matter's prior too, it
/// becomes grey, and the white matter under the atlas's soft edge stays white.
#[test]
fn an_atlas_places_deep_grey_matter_the_network_calls_white() {
    let (labels, mut values, mut probs, truth) = phantom([30.0, 70.0, 110.0]);
    let nucleus = add_nucleus(&mut values, &mut probs, &truth, 7, [0.1, 0.9]);
    // The atlas: a little wider than the nucleus and soft at its edge.
    let atlas: Vec<f32> =
        (0..truth.len()).map(|v| 0.8 * (1.0 - ((from_nucleus_centre(v) - 3.0) / 2.0).clamp(0.0, 1.0))).collect();
    let n_nucleus = nucleus.iter().filter(|&&b| b).count();
    let run = |share: Option<&[f32]>| {
        let (mut l, mut p) = (labels.clone(), probs.clone());
        fit_tissue(&mut l, &mut p, &[&values], [40, 40, 40], [1.0; 3], SLOTS, &spec(), share, None, ClassHints::default()).expect("fitted");
        let grey = (0..l.len()).filter(|&v| nucleus[v] && l[v] == 2).count() as f64 / n_nucleus as f64;
        let ring = (0..l.len()).filter(|&v| truth[v] == 3 && !nucleus[v] && atlas[v] > 0.0);
        let (white, total) = ring.fold((0, 0), |(a, t), v| (a + usize::from(l[v] == 3), t + 1));
        (grey, white as f64 / total.max(1) as f64)
    };
    let (alone, _) = run(None);
    let (by_atlas, ring_white) = run(Some(&atlas));
    assert!(alone < 0.4, "one grey-matter Gaussian: {alone:.2} of the nucleus grey");
    assert!(by_atlas > 0.8, "placed by the atlas: {by_atlas:.2} of the nucleus grey");
    assert!(ring_white > 0.6, "white matter under the atlas's soft edge kept white: {ring_white:.2}");
}

/// A contrast-enhanced T1 after the fluid rim's step: little fluid left (the ventricle only)
/// and a bright tail (enhancing vessels, 5 % of the brain) that k-means makes a class of its
/// own, farthest from the median. Alone, the fit takes that tail for fluid; told by the rim's
/// step that fluid is the dark end, it sets the tail aside and finds the three tissues.
#[test]
fn a_bright_tail_is_not_taken_for_fluid_when_the_rim_saw_fluid_dark() {
    let (mut labels, mut values, probs, truth) = phantom([30.0, 70.0, 100.0]);
    let s = 40usize;
    let mut tail = 0;
    for v in 0..s * s * s {
        let (x, y, z) = (v % s, (v / s) % s, v / (s * s));
        let r2 = [x, y, z].map(|c| (c as f32 - 19.5).powi(2)).iter().sum::<f32>();
        if truth[v] == 1 && r2 > 15.5f32.powi(2) {
            labels[v] = 0; // the surface CSF: the fluid rim, left out of the fit
        } else if truth[v] == 3 && (x == 12 || x == 13 || y == 27) {
            values[v] = 220.0; // enhancing vessels
            tail += 1;
        }
    }
    let brain = labels.iter().filter(|&&l| l != 0).count();
    assert!(tail * 25 > brain && tail * 10 < brain, "tail {tail} of {brain}");
    let seen = FluidClass { centres: [30.0, 70.0, 100.0], fluid: 0, no_signal: 0.0 };
    let fit = |seen: Option<&FluidClass>| {
        let (mut l, mut p) = (labels.clone(), probs.clone());
        fit_tissue(&mut l, &mut p, &[&values], [40, 40, 40], [1.0; 3], SLOTS, &spec(), None, None, ClassHints { fluid_seen: seen, grey_darker: false }).expect("fitted").0
    };
    let alone = fit(None);
    assert!(alone.means[0] > 150.0, "without the rim's classes fluid goes to the tail: {:?}", alone.means);
    let told = fit(Some(&seen));
    let [csf, grey, white] = told.means;
    assert!((csf - 30.0).abs() < 10.0 && (grey - 70.0).abs() < 10.0 && (white - 100.0).abs() < 10.0, "{:?}", told.means);
    assert!(matches!(told.tail, Some(ValueTail::Above(cut, share)) if cut > 100.0 && cut < 220.0 && share > 0.03), "{:?}", told.tail);
    assert!(told.describe().contains("started no class"));
    // The fit relabels the brain it was given.
    let (mut l, mut p) = (labels.clone(), probs.clone());
    fit_tissue(&mut l, &mut p, &[&values], [40, 40, 40], [1.0; 3], SLOTS, &spec(), None, None, ClassHints { fluid_seen: Some(&seen), grey_darker: false });
    let ventricle_csf = (0..s * s * s).filter(|&v| truth[v] == 1 && labels[v] != 0 && l[v] == 1).count();
    let ventricle = (0..s * s * s).filter(|&v| truth[v] == 1 && labels[v] != 0).count();
    assert!(ventricle_csf * 10 >= ventricle * 8, "{ventricle_csf} of {ventricle} ventricle voxels CSF");
}

/// A T1 acquired with contrast on which the network leans grey on the brighter class (its grey
/// and white probabilities swapped): by its lean the fit takes white matter for grey; told that
/// grey matter is the darker class (`grey_darker`), it finds grey at 70 and white at 100.
#[test]
fn grey_is_the_darker_class_when_told_and_the_lean_otherwise() {
    let (labels, values, mut probs, _) = phantom([30.0, 70.0, 100.0]);
    let plane = 40 * 40;
    for k in 0..40 {
        for i in 0..plane {
            probs.swap((k * 4 + 2) * plane + i, (k * 4 + 3) * plane + i);
        }
    }
    let fit = |hints: ClassHints| {
        let (mut l, mut p) = (labels.clone(), probs.clone());
        fit_tissue(&mut l, &mut p, &[&values], [40, 40, 40], [1.0; 3], SLOTS, &spec(), None, None, hints).expect("fitted").0
    };
    let by_lean = fit(ClassHints::default());
    assert!(by_lean.means[1] > by_lean.means[2], "the swapped lean takes the brighter class for grey: {:?}", by_lean.means);
    let told = fit(ClassHints { fluid_seen: None, grey_darker: true });
    let [_, grey, white] = told.means;
    assert!((grey - 70.0).abs() < 10.0 && (white - 100.0).abs() < 10.0, "{:?}", told.means);
}
