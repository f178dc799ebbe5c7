//! The series one analysis reads: the analysed series and, for models with several modality
//! slots, further series of the same head, each checked and resampled onto the analysed
//! series' grid. Shared by `focal analyze` and the window.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::analysis::SlotSeries;
use super::{InferenceError, Manifest, Result};
use crate::study::{self, Progress, Stack, StudySet, Volume};

/// Refuses a series whose sizes would rest on an assumed or impossible value (no position or
/// orientation, all slices at one position, no usable pixel spacing, implausible spacing,
/// unreadable geometry or rescale values), naming each problem: an analysis reports volumes in
/// mL, and they would be wrong.
pub fn check_measurable(stack: &Stack, uid: &str) -> Result<()> {
    let mut problems: Vec<String> =
        stack.warnings.iter().filter(|w| w.blocks_measurement()).map(ToString::to_string).collect();
    if stack.geometry.is_none() {
        problems.insert(0, "no position/orientation (ImagePositionPatient, ImageOrientationPatient): no grid to measure on".into());
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(InferenceError::Input(format!(
        "series {uid} cannot be analysed: {}; its volumes would rest on values Focal would have to assume (the viewer still opens it)",
        problems.join("; ")
    )))
}

/// Loads the series `others` (UIDs in `set`), checks that each shows the same head as
/// `primary_stack`, and resamples it onto `primary`'s grid. Returns every slot's volume
/// (`primary` first) and what each slot holds.
pub fn paired_volumes(
    manifest: &Manifest,
    set: &StudySet,
    primary_uid: &str,
    primary_stack: &Stack,
    primary: Arc<Volume>,
    others: &[String],
    cancel: &AtomicBool,
) -> Result<(Vec<Arc<Volume>>, Vec<SlotSeries>)> {
    check_measurable(primary_stack, primary_uid)?;
    let slots = manifest.input.slots.len();
    if 1 + others.len() > slots {
        return Err(InferenceError::Input(format!(
            "{} series given, but the model {} takes at most {slots} ({})",
            1 + others.len(),
            manifest.name,
            manifest.input.slots.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let description = |uid: &str| set.find_series(uid).and_then(|s| s.description.clone());
    let mut records = vec![SlotSeries {
        slot: manifest.slot_name(0),
        series_uid: primary_uid.to_string(),
        description: description(primary_uid),
        coverage: 1.0,
        warnings: primary_stack.warnings.iter().map(ToString::to_string).collect(),
    }];
    let mut volumes = vec![primary];
    for uid in others {
        if uid == primary_uid {
            return Err(InferenceError::Input(format!(
                "series {uid} is the analysed series; give another series to combine"
            )));
        }
        let series = set
            .find_series(uid)
            .ok_or_else(|| InferenceError::Input(format!("no series {uid} in the study")))?;
        let stack =
            series.largest_stack().map(|(_, st)| st).ok_or_else(|| InferenceError::Input(format!("series {uid} has no images")))?;
        check_measurable(stack, uid)?;
        study::pairing::check_same_head(primary_stack, stack, uid).map_err(|e| InferenceError::Input(e.to_string()))?;
        let raw = study::load_volume(stack, &|_: Progress| {}, cancel)
            .map_err(|e| InferenceError::Input(format!("series {uid} could not be decoded: {}", study::error_chain(&e))))?;
        let (resampled, coverage) =
            study::pairing::resample_onto(&volumes[0], &raw, uid).map_err(|e| InferenceError::Input(e.to_string()))?;
        records.push(SlotSeries {
            slot: manifest.slot_name(volumes.len()),
            series_uid: uid.clone(),
            description: series.description.clone(),
            coverage,
            warnings: stack.warnings.iter().map(ToString::to_string).collect(),
        });
        volumes.push(Arc::new(resampled));
    }
    Ok((volumes, records))
}
