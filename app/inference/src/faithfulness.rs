//! The deletion test of the attention map: does deleting what the model attends to change
//! its labels more than deleting other pixels? Run through the same session on a few slices
//! of every analysis, so each analysis carries its own faithfulness score.

use serde::{Deserialize, Serialize};

use super::Result;
use super::preprocess::Preprocessor;
use super::engine::Engine;

/// Share of the predicted (non-background) pixels deleted in each variant.
pub const DELETED_SHARE: f64 = 0.2;
/// Side of the random blocks, in model pixels.
pub const BLOCK: usize = 8;
/// Slices tested per analysis (spread over the slices with the most labelled pixels).
pub const SLICES: usize = 6;
/// Random-block draws per slice.
const RANDOM_DRAWS: usize = 2;

/// Mean and standard deviation over the tested slices.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct MeanSd {
    pub mean: f64,
    pub sd: f64,
}

/// The result of the deletion test. Each variant deletes (sets to 0, in every input channel)
/// 20 % of the pixels the model labelled as non-background and measures the share of the
/// other labelled pixels whose label changes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Faithfulness {
    pub slices_tested: Vec<usize>,
    pub top_attention: MeanSd,
    pub bottom_attention: MeanSd,
    pub random_blocks: MeanSd,
    /// top ÷ random blocks: above 1 when deleting attended pixels matters more than chance.
    pub score: f64,
    /// Deleting the top 20 % changed more labels than both random blocks and the bottom 20 %.
    pub passed: bool,
    pub method: String,
}

impl Faithfulness {
    /// The result in one sentence, for the CLI, the window and the report.
    pub fn describe(&self) -> String {
        format!(
            "Deletion test on {} slices of this series: deleting the 20% most-attended labelled pixels changed {:.1}% ± {:.1} of the other labels, random 8×8 blocks {:.1}% ± {:.1}, the 20% least attended {:.1}% ± {:.1}. Score {:.2} (top ÷ random): {}.",
            self.slices_tested.len(),
            self.top_attention.mean * 100.0,
            self.top_attention.sd * 100.0,
            self.random_blocks.mean * 100.0,
            self.random_blocks.sd * 100.0,
            self.bottom_attention.mean * 100.0,
            self.bottom_attention.sd * 100.0,
            self.score,
            if self.passed {
                "passed - the labels depend more on the attended pixels than on others"
            } else {
                "FAILED - on this series the attention map does not explain the labels"
            }
        )
    }
}

/// A small deterministic generator (splitmix64): the test gives the same answer every run.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// Label (argmax) per pixel of a padded model-grid batch item.
pub fn argmax_labels(probs: &[f32], classes: usize, n_pixels: usize, item: usize) -> Vec<u8> {
    let base = item * classes * n_pixels;
    (0..n_pixels)
        .map(|i| {
            (0..classes)
                .max_by(|&a, &b| probs[base + a * n_pixels + i].total_cmp(&probs[base + b * n_pixels + i]))
                .unwrap_or(0) as u8
        })
        .collect()
}

/// Slices to test: up to `SLICES`, evenly spread over those whose labelled area is at least
/// a fifth of the largest.
pub fn pick_slices(labels: &[u8], plane: usize, slices: usize) -> Vec<usize> {
    let counts: Vec<usize> = (0..slices)
        .map(|k| labels[k * plane..(k + 1) * plane].iter().filter(|&&l| l != 0).count())
        .collect();
    let most = counts.iter().copied().max().unwrap_or(0);
    if most == 0 {
        return Vec::new();
    }
    let candidates: Vec<usize> = (0..slices).filter(|&k| counts[k] * 5 >= most).collect();
    let n = candidates.len().min(SLICES);
    (0..n).map(|i| candidates[(2 * i + 1) * candidates.len() / (2 * n)]).collect()
}

/// Runs the deletion test on a few slices of an analysis (`labels` on the volume grid pick
/// the slices; the test itself runs on the model grid with the model's own attention).
pub fn deletion_test(engine: &mut Engine, pre: &Preprocessor, labels: &[u8]) -> Result<Option<Faithfulness>> {
    let g = pre.grid;
    let plane = g.rows * g.columns;
    let picked = pick_slices(labels, plane, pre.slices());
    let (n_pixels, channels, classes) = (g.ph * g.pw, pre.channels(), engine.classes());
    let mut rng = SplitMix(0x00F0_CA15);
    let (mut top, mut bottom, mut random, mut tested) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &k in &picked {
        let input = pre.input(k);
        let base = engine.run(input.clone(), 1, g.ph, g.pw)?;
        let base_labels = argmax_labels(&base.probs, classes, n_pixels, 0);
        // Labelled pixels inside the unpadded grid.
        let fg: Vec<usize> = (0..g.mh)
            .flat_map(|y| (0..g.mw).map(move |x| y * g.pw + x))
            .filter(|&i| base_labels[i] != 0)
            .collect();
        if fg.len() < 200 {
            continue;
        }
        let n_del = (fg.len() as f64 * DELETED_SHARE).round() as usize;
        let mut by_attention = fg.clone();
        by_attention.sort_by(|&a, &b| base.attention[b].total_cmp(&base.attention[a]));
        let mut variants = vec![by_attention[..n_del].to_vec(), by_attention[fg.len() - n_del..].to_vec()];
        for _ in 0..RANDOM_DRAWS {
            variants.push(random_blocks(&fg, g.pw, n_del, &mut rng));
        }
        let mut batch = Vec::with_capacity(variants.len() * input.len());
        for deleted in &variants {
            let mut x = input.clone();
            for c in 0..channels {
                for &i in deleted {
                    x[c * n_pixels + i] = 0.0;
                }
            }
            batch.extend(x);
        }
        let out = engine.run(batch, variants.len(), g.ph, g.pw)?;
        let changed: Vec<f64> = variants
            .iter()
            .enumerate()
            .map(|(v, deleted)| {
                let after = argmax_labels(&out.probs, classes, n_pixels, v);
                let mut is_deleted = vec![false; n_pixels];
                deleted.iter().for_each(|&i| is_deleted[i] = true);
                let rest: Vec<usize> = fg.iter().copied().filter(|&i| !is_deleted[i]).collect();
                rest.iter().filter(|&&i| after[i] != base_labels[i]).count() as f64 / rest.len().max(1) as f64
            })
            .collect();
        top.push(changed[0]);
        bottom.push(changed[1]);
        random.push(changed[2..].iter().sum::<f64>() / RANDOM_DRAWS as f64);
        tested.push(k);
    }
    if tested.is_empty() {
        return Ok(None);
    }
    let (t, b, r) = (mean_sd(&top), mean_sd(&bottom), mean_sd(&random));
    Ok(Some(Faithfulness {
        slices_tested: tested,
        score: t.mean / r.mean.max(1e-9),
        passed: t.mean > r.mean && t.mean > b.mean,
        top_attention: t,
        bottom_attention: b,
        random_blocks: r,
        method: format!(
            "deletion test: {:.0}% of the labelled pixels set to 0 in every input channel (the top or bottom by attention, or random {BLOCK}×{BLOCK} blocks, {RANDOM_DRAWS} draws); share of the other labelled pixels whose label changes",
            DELETED_SHARE * 100.0
        ),
    }))
}

/// Labelled pixels inside random blocks until `n` are deleted (the last block partly).
fn random_blocks(fg: &[usize], pw: usize, n: usize, rng: &mut SplitMix) -> Vec<usize> {
    let mut by_block: std::collections::BTreeMap<(usize, usize), Vec<usize>> = Default::default();
    for &i in fg {
        by_block.entry(((i / pw) / BLOCK, (i % pw) / BLOCK)).or_default().push(i);
    }
    let mut blocks: Vec<Vec<usize>> = by_block.into_values().collect();
    rng.shuffle(&mut blocks);
    let mut out = Vec::with_capacity(n);
    for b in blocks {
        let take = (n - out.len()).min(b.len());
        out.extend_from_slice(&b[..take]);
        if out.len() >= n {
            break;
        }
    }
    out
}

pub fn mean_sd(v: &[f64]) -> MeanSd {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    MeanSd { mean, sd: var.sqrt() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_slices_are_spread_over_the_labelled_ones() {
        let plane = 4;
        // 20 slices; slices 5..15 have 4 labelled pixels, the others none.
        let labels: Vec<u8> = (0..20).flat_map(|k| [u8::from((5..15).contains(&k)); 4]).collect();
        let picked = pick_slices(&labels, plane, 20);
        assert_eq!(picked.len(), SLICES);
        assert!(picked.iter().all(|k| (5..15).contains(k)), "{picked:?}");
        assert!(picked.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn random_blocks_delete_exactly_n_labelled_pixels() {
        let fg: Vec<usize> = (0..64 * 64).filter(|i| i % 3 != 0).collect();
        let mut rng = SplitMix(1);
        let d = random_blocks(&fg, 64, 500, &mut rng);
        assert_eq!(d.len(), 500);
        let mut sorted = d.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 500);
        assert!(d.iter().all(|i| fg.contains(i)));
    }
}
