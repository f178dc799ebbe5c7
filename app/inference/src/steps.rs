//! The manifest's post-processing steps, in its order, on the labels and probabilities the
//! network left: the brain extent or extractor, the fluid rim, the largest component and the
//! scan's own tissue model. Each reports what it did.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;

use super::engine::Engine;
use super::key_regions::KeyRegions;
use super::{InferenceError, Result};
use crate::study::Volume;

/// One post-processing step of an analysis and the labelled volume it set to background.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PostprocessStep {
    pub step: String,
    pub removed_ml: f64,
    /// What the step decided on this series (the fluid rim: which values were fluid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The volume the step gave a label instead of background, and that label (the fluid rim
    /// with "label_as": the extra-axial CSF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labelled: Option<(f64, String)>,
}

impl PostprocessStep {
    /// "brain extent (3D model): 732 mL labelled where it found no brain set to background",
    /// for the CLI, reports and the window.
    pub fn describe(&self) -> String {
        let ml = self.removed_ml;
        match self.step.as_str() {
            "brain_extent" => {
                format!("brain extent (3D model): {ml:.0} mL labelled where it found no brain set to background")
            }
            "brain_extractor" => {
                let what = self.detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default();
                format!("brain extractor: {ml:.0} mL labelled outside the brain it found set to background{what}")
            }
            "fluid_rim" => {
                let fluid = self.detail.as_ref().map(|d| format!("; fluid = {d}")).unwrap_or_default();
                match &self.labelled {
                    Some((kept, label)) => format!(
                        "fluid rim: {kept:.0} mL of fluid-like voxels at the brain's surface (extra-axial CSF) left out of the tissue model and labelled {label}, {ml:.0} mL without signal set to background{fluid}"
                    ),
                    None => format!(
                        "fluid rim: {ml:.0} mL of fluid-like voxels at the brain's surface (extra-axial CSF, dura) set to background{fluid}"
                    ),
                }
            }
            "largest_component" => {
                format!("largest connected object kept: {ml:.0} mL in islands apart from it set to background")
            }
            "tissue_em" => {
                let fit = self.detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default();
                format!(
                    "tissue classes from this scan's own model (Gaussian per class, network prior, bias field, MRF){fit}"
                )
            }
            other => format!("{other}: {ml:.0} mL set to background"),
        }
    }
}

/// Runs the manifest's post-processing steps. `extracted`: the brain extractor's mask, run
/// before the network (its step applies it). `dims` = [columns, rows, slices], `spacing` in mm.
/// Returns the steps' reports, the seconds spent in models (the brain extent's) and the key
/// regions (with the tissue model, when the manifest asks for them).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    engine: &mut Engine,
    volumes: &[&Volume],
    mut extracted: Option<Vec<bool>>,
    labels: &mut [u8],
    probabilities: &mut [f32],
    [cols, rows, slices]: [usize; 3],
    spacing: [f64; 3],
    cancel: &AtomicBool,
) -> Result<(Vec<PostprocessStep>, f64, Option<KeyRegions>)> {
    let volume = volumes[0];
    let mut key_regions = None;
    let classes = engine.classes();
    let plane = rows * cols;
    let mut model_seconds = 0.0;
    let voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0;
    let mut postprocess = Vec::new();
    // The fluid rim's voxels and the class they take after the last step ("label_as").
    let mut rim_as: Option<(Vec<usize>, usize)> = None;
    // The classes the fluid rim's step found (which end of the values fluid is at).
    let mut rim_classes: Option<super::postprocess::FluidClass> = None;
    for step in engine.manifest.postprocess.clone() {
        if cancel.load(Ordering::Relaxed) {
            return Err(InferenceError::Cancelled);
        }
        let mut detail = None;
        let mut labelled = None;
        let removed = match step.as_str() {
            "brain_extent" => {
                let t = Instant::now();
                let Some(brain) = super::extent::brain_probability(engine, volume)? else {
                    continue;
                };
                model_seconds += t.elapsed().as_secs_f64();
                let threshold = engine.manifest.extent.as_ref().map_or(0.5, |e| e.threshold);
                super::extent::apply(labels, &brain, threshold)
            }
            "brain_extractor" => {
                let Some(brain) = extracted.take() else {
                    continue;
                };
                let label_of: Vec<u8> = engine.manifest.labels.iter().map(|l| l.index).collect();
                let (removed, added) =
                    super::extractor::apply(labels, &brain, probabilities, &label_of, plane);
                let name = engine.manifest.extractor.as_ref().map_or("", |e| e.name.as_str());
                let brain_ml = brain.iter().filter(|&&b| b).count() as f64 * voxel_ml;
                detail = Some(format!(
                    "{name}: {brain_ml:.0} mL of brain; {:.0} mL the network left unlabelled inside it labelled",
                    added as f64 * voxel_ml
                ));
                removed
            }
            "fluid_rim" => {
                let Some(rim) = engine.manifest.fluid_rim.as_ref() else {
                    continue;
                };
                if volume.channels != 1 {
                    continue;
                }
                let (removed, class) =
                    super::postprocess::trim_fluid_rim(labels, &volume.data, [cols, rows, slices], spacing, rim.depth_mm);
                detail = class.as_ref().map(|c| c.describe());
                rim_classes = class;
                match (rim.label_as.as_deref().and_then(|n| engine.manifest.label_named(n)), &class) {
                    (Some(class), Some(fluid)) => {
                        // Rim voxels without signal (a skull-stripped scan's zeros) are not CSF.
                        let (set, without_signal): (Vec<usize>, Vec<usize>) =
                            removed.into_iter().partition(|&v| f64::from(volume.data[v]) >= fluid.no_signal);
                        labelled = Some((set.len() as f64 * voxel_ml, engine.manifest.labels[class].name.clone()));
                        rim_as = Some((set, class));
                        without_signal.len()
                    }
                    _ => removed.len(),
                }
            }
            "largest_component" => super::postprocess::keep_largest_component(labels, [cols, rows, slices]),
            "tissue_em" => {
                let Some(spec) = engine.manifest.tissue_em.as_ref() else {
                    continue;
                };
                let Ok(slots) = super::tissue::TissueSlots::find(&engine.manifest.labels, classes) else {
                    continue;
                };
                let fluid_label = slots.label[0];
                let (used, left_out) = tissue_channels(volumes, labels, spacing);
                let (channels, slot_of): (Vec<&[f32]>, Vec<usize>) = used.into_iter().unzip();
                let left_out_note: String = left_out
                    .iter()
                    .map(|(i, mm)| {
                        format!(
                            "; {} series left out (resampled from voxels of up to {mm:.1} mm onto this grid of {:.1} mm: partial volume across its slices would look like tissue that is not there)",
                            engine.manifest.slot_name(*i),
                            largest(spacing)
                        )
                    })
                    .collect();
                // The deep grey-matter atlas, placed on this scan's brain (it needs the scan's
                // patient axes); where it cannot be placed the step goes on without it.
                let placed = engine.deep_gm_atlas.as_ref().map(|atlas| match volume.geometry.as_ref() {
                    Some(g) => atlas.shares(labels, [cols, rows, slices], g),
                    None => Err("the series has no patient geometry".to_string()),
                });
                let atlas_note = match &placed {
                    Some(Ok(_)) => "; deep grey matter placed by the atlas".to_string(),
                    Some(Err(why)) => format!("; deep grey-matter atlas not placed: {why}"),
                    None => String::new(),
                };
                let Some((fit, departure)) = super::tissue::fit_tissue(
                    labels,
                    probabilities,
                    &channels,
                    [cols, rows, slices],
                    spacing,
                    slots,
                    spec,
                    placed.as_ref().and_then(|p| p.as_deref().ok()),
                    engine.manifest.key_regions.as_ref().map(|k| k.departure()),
                    super::tissue::ClassHints {
                        fluid_seen: rim_classes.as_ref().filter(|_| spec.fluid_end_from_rim),
                        grey_darker: spec.contrast_grey_darker && volume.contrast,
                    },
                ) else {
                    continue;
                };
                detail = Some(format!(
                    "{}{atlas_note}{left_out_note}; {:.0} mL relabelled",
                    fit.describe(),
                    fit.changed as f64 * voxel_ml
                ));
                if let (Some(spec), Some(departure)) = (engine.manifest.key_regions.as_ref(), departure) {
                    let t = Instant::now();
                    let manifest = &engine.manifest;
                    let name = |index: u8| {
                        manifest.labels.iter().find(|l| l.index == index).map_or_else(|| format!("label {index}"), |l| l.name.clone())
                    };
                    let slots: Vec<String> = slot_of.iter().map(|&i| manifest.slot_name(i)).collect();
                    let found = super::key_regions::find(
                        &departure,
                        labels,
                        [cols, rows, slices],
                        spacing,
                        volume.geometry.as_ref(),
                        &name,
                        &slots,
                        spec,
                        super::key_regions::ScanFacts { fluid_label, contrast: volume.contrast },
                    );
                    tracing::debug!(regions = found.regions.len(), seconds = t.elapsed().as_secs_f64(), "key regions");
                    key_regions = Some(found);
                }
                0
            }
            _ => continue,
        };
        tracing::debug!(step = %step, removed, "post-processing set voxels to background");
        postprocess.push(PostprocessStep {
            step,
            removed_ml: removed as f64 * voxel_ml,
            detail,
            labelled,
        });
    }
    if let Some((set, class)) = rim_as {
        label_rim(labels, probabilities, &set, class, engine.manifest.labels[class].index, classes, plane);
    }
    Ok((postprocess, model_seconds, key_regions))
}

/// Gives the fluid rim's voxels (`set`, indices into the volume) the label `index`, class
/// `class` of `classes`, with all of its probability: they were left out of the steps after
/// the rim (a rim voxel's probabilities sit at slice `v / plane`, class, pixel `v % plane`).
fn label_rim(labels: &mut [u8], probabilities: &mut [f32], set: &[usize], class: usize, index: u8, classes: usize, plane: usize) {
    for &v in set {
        labels[v] = index;
        let (k, i) = (v / plane, v % plane);
        for c in 0..classes {
            probabilities[(k * classes + c) * plane + i] = if c == class { 1.0 } else { 0.0 };
        }
    }
}

/// A further series resampled from voxels more than this many times the analysed grid's
/// largest is left out of the tissue model.
const COARSER: f64 = 1.5;

/// A voxel's largest side (mm).
fn largest(spacing: [f64; 3]) -> f64 {
    spacing.iter().copied().fold(0.0, f64::max)
}

/// The series the scan's tissue model fits, each with its slot: the analysed one, and each
/// further series that covers (finite, non-zero) at least 98 % of the labelled brain (one
/// covering less would leave part of the brain modelled on a missing value) and whose own
/// voxels are at most `COARSER` times the grid's (`spacing`); and the slots of those left out
/// for their coarser voxels, each with its largest voxel size (mm). Resampled from thick
/// slices, a series averages tissues across each slice: at every boundary its value is a
/// mixture the analysed series does not see, which the tissue model would take for another
/// tissue and key regions for a departure (a 4 mm copy of the sample's own 2 mm T1 gave 7).
fn tissue_channels<'a>(volumes: &[&'a Volume], labels: &[u8], spacing: [f64; 3]) -> (Vec<(&'a [f32], usize)>, Vec<(usize, f64)>) {
    let brain = labels.iter().filter(|&&l| l != 0).count().max(1);
    let grid = largest(spacing);
    let covers = |v: &Volume| {
        v.data.len() == labels.len()
            && labels.iter().zip(&v.data).filter(|(l, x)| **l != 0 && x.is_finite() && **x != 0.0).count() as f64
                >= 0.98 * brain as f64
    };
    let (mut used, mut left_out) = (Vec::new(), Vec::new());
    for (i, v) in volumes.iter().enumerate() {
        if i == 0 {
            used.push((v.data.as_slice(), i));
        } else if covers(v) {
            match v.resampled_from_mm.map(largest) {
                Some(own) if own > COARSER * grid => left_out.push((i, own)),
                _ => used.push((v.data.as_slice(), i)),
            }
        }
    }
    (used, left_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fluid_rim_takes_its_label_and_all_of_its_probability() {
        // Two slices of 2 x 2 pixels, three classes; voxels 1 and 6 are the rim.
        let (plane, classes) = (4, 3);
        let mut labels = vec![2, 0, 3, 3, 2, 2, 0, 3];
        let mut probabilities = vec![0.25f32; 2 * classes * plane];
        label_rim(&mut labels, &mut probabilities, &[1, 6], 1, 7, classes, plane);
        assert_eq!(labels, vec![2, 7, 3, 3, 2, 2, 7, 3]);
        let p = |k: usize, c: usize, i: usize| probabilities[(k * classes + c) * plane + i];
        assert_eq!([p(0, 0, 1), p(0, 1, 1), p(0, 2, 1)], [0.0, 1.0, 0.0]);
        assert_eq!([p(1, 0, 2), p(1, 1, 2), p(1, 2, 2)], [0.0, 1.0, 0.0]);
        assert_eq!([p(0, 1, 0), p(1, 1, 1)], [0.25, 0.25], "other voxels untouched");
    }
}
