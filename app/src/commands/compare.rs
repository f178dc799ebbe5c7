//! `focal compare A B`: two label maps of one series, label by label — Focal's analysis (its
//! reviewed labels where a reader corrected them), a second reader's, or a NIfTI label map
//! another tool wrote (ITK-SNAP, SynthSeg, TotalSegmentator), taken onto A's grid by world
//! coordinates.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::inference::compare::{self, LabelMap};
use crate::inference::nifti;
use crate::inference::output::{current_labels_file, read_summary};

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// The reference: an analysis folder or a NIfTI label map (.nii, .nii.gz).
    pub a: PathBuf,
    /// The one compared with it: those kinds, a DICOM Segmentation (its segment numbers as the
    /// labels) or an RT Structure Set (its ROI numbers); taken onto A's grid.
    pub b: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A label map from an analysis folder (the reviewed labels, where a reader corrected them) or
/// a NIfTI file, with the names an analysis gives its labels.
fn open(path: &Path) -> anyhow::Result<(LabelMap, Vec<(u32, String)>)> {
    let (file, names) = if path.is_dir() {
        let summary = read_summary(path)?;
        (current_labels_file(path), summary.labels.iter().map(|l| (l.index as u32, l.name.clone())).collect())
    } else {
        (path.to_path_buf(), Vec::new())
    };
    let (dims, labels, affine) = nifti::read_labels(&file).with_context(|| format!("reading {}", file.display()))?;
    Ok((LabelMap { dims, labels, affine }, names))
}

/// A DICOM Segmentation or RT Structure Set placed on `onto`'s grid, a voxel taking the number
/// of the segment (ROI) drawn there, with the segments' labels as names.
fn open_segmentation(path: &Path, onto: &LabelMap) -> anyhow::Result<(LabelMap, Vec<(u32, String)>)> {
    let header = crate::study::read_header(path)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), crate::study::error_chain(&e)))?
        .ok_or_else(|| anyhow::anyhow!("{}: neither an analysis folder, NIfTI nor DICOM", path.display()))?;
    use crate::study::objects::{self, Grid, RT_STRUCTURE_SET_STORAGE, SEGMENTATION_STORAGE};
    let geometry = nifti::geometry_of(&onto.affine);
    let grid = Grid { geometry: &geometry, dims: onto.dims };
    let seg = match header.sop_class_uid.as_str() {
        SEGMENTATION_STORAGE => objects::read_segmentation(&header, &grid),
        RT_STRUCTURE_SET_STORAGE => objects::read_structure_set(&header, &grid),
        _ => anyhow::bail!(
            "{}: a {} object, not a segmentation or structure set",
            path.display(),
            header.modality.as_deref().unwrap_or("DICOM")
        ),
    }
    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    for note in &seg.notes {
        eprintln!("{}: {note}", path.display());
    }
    let numbers: Vec<u32> = seg.segments.iter().map(|s| u32::from(s.number)).collect();
    let labels = seg.labels.iter().map(|&v| if v == 0 { 0 } else { numbers[usize::from(v) - 1] }).collect();
    let names = seg.segments.iter().map(|s| (u32::from(s.number), s.label.clone())).collect();
    Ok((LabelMap { dims: onto.dims, labels, affine: onto.affine }, names))
}

pub fn compare(args: &CompareArgs) -> anyhow::Result<i32> {
    let (a, names_a) = open(&args.a)?;
    let (b, names_b) = if args.b.is_dir() || crate::inference::overlays::is_nifti(&args.b) {
        open(&args.b)?
    } else {
        open_segmentation(&args.b, &a)?
    };
    let (b_on_a, covered) = compare::onto_grid(&a, &b).map_err(|e| anyhow::anyhow!("{}: {e}", args.b.display()))?;
    let spacing = compare::spacing(&a.affine);
    let rows = compare::compare(&a.labels, &b_on_a, a.dims, spacing);
    let name = |l: u32| {
        names_a.iter().chain(&names_b).find(|(i, _)| *i == l).map_or_else(|| format!("label {l}"), |(_, n)| n.clone())
    };
    if args.json {
        let out: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["name"] = serde_json::Value::String(name(r.label));
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "b_covers_a": covered, "labels": out }))?);
        return Ok(crate::exit::OK);
    }
    if covered < 1.0 {
        println!("B covers {:.1}% of A's grid (the rest counts as unlabelled)", covered * 100.0);
    }
    println!("{:<20} {:>10} {:>10} {:>8} {:>7} {:>9}", "label", "A mL", "B mL", "diff %", "Dice", "HD95 mm");
    let opt = |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |x| format!("{x:.digits$}"));
    for r in &rows {
        println!(
            "{:<20} {:>10.2} {:>10.2} {:>8} {:>7} {:>9}",
            name(r.label),
            r.volume_a_ml,
            r.volume_b_ml,
            opt(r.volume_difference_percent, 1),
            opt(r.dice, 3),
            opt(r.hausdorff95_mm, 2)
        );
    }
    Ok(crate::exit::OK)
}
