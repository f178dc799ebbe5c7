//! A picture report: a series' images in a PDF without an analysis, for what the model cannot
//! analyse — radiographs, ultrasound, photographs and other images without a patient position
//! and orientation (no volume, so no labels, SEG or Parametric Map) — or any series when no
//! analysis is given. De-identified as the analysis report is, written atomically beside it.

use std::path::PathBuf;

use dicom_dictionary_std::tags;

use super::ExportError;
use super::content::identifier_lines;
use super::export::{ExportSummary, render_key_image, slice_window, write_file, write_staged};
use super::pdf::{KeyImageBlock, ReportContent, write_pdf};
use crate::render::{OffscreenRenderer, SlicePixels, SliceStyle};
use crate::study::open::{Extent, open_object};
use crate::study::{Stack, StudySet};

/// At most this many images of the series go into the report, evenly spaced.
pub const MAX_PICTURES: usize = 8;

/// What to write.
#[derive(Debug, Clone)]
pub struct PictureOptions {
    pub out: PathBuf,
    /// The series (UID); the set's largest stack when none.
    pub series: Option<String>,
    pub keep_phi: bool,
    pub force: bool,
}

/// Which images of `count` go into the report: all up to MAX_PICTURES, else that many evenly
/// spaced, the first and the last among them.
pub fn picked(count: usize) -> Vec<usize> {
    if count <= MAX_PICTURES {
        return (0..count).collect();
    }
    (0..MAX_PICTURES).map(|i| i * (count - 1) / (MAX_PICTURES - 1)).collect()
}

/// What the first image says of burned-in annotation (0028,0301): Some(true) for "YES".
fn burned_in(stack: &Stack) -> Result<Option<bool>, ExportError> {
    let first = stack.slices.first().ok_or(ExportError::Source("the series has no images".into()))?;
    let obj = open_object(&first.instance.path, Extent::Header)
        .map_err(|e| ExportError::Source(crate::study::error_chain(&e)))?
        .ok_or(ExportError::Source("the first image is not DICOM".into()))?;
    Ok(obj
        .element(tags::BURNED_IN_ANNOTATION)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|v| v.trim().eq_ignore_ascii_case("YES")))
}

/// Writes `report.pdf` and `export.json` for one series' pictures. The caller has checked that
/// `opts.out` is outside the study.
pub fn export_pictures(set: &StudySet, opts: &PictureOptions) -> Result<ExportSummary, ExportError> {
    let (series, stack) = match &opts.series {
        Some(uid) => {
            let s = set
                .find_series(uid)
                .ok_or_else(|| ExportError::Source("no series of the study has the UID given".into()))?;
            let (_, st) = s
                .largest_stack()
                .ok_or(ExportError::Source("the series has no images".into()))?;
            (s, st)
        }
        None => {
            let (s, _, st) = set
                .largest_stack()
                .ok_or(ExportError::Source("the study has no images".into()))?;
            (s, st)
        }
    };
    let burned = burned_in(stack)?;
    if burned == Some(true) && !opts.keep_phi {
        return Err(ExportError::Source(
            "the images say they carry burned-in annotation (0028,0301 YES), which may name the patient; a de-identified picture report cannot remove it: pass --keep-phi to write it with identifiers, knowingly".into(),
        ));
    }
    let spacing = stack.display_spacing();
    let renderer = OffscreenRenderer::new().ok();
    let renderer_name = renderer
        .as_ref()
        .map(|r| r.adapter.clone())
        .unwrap_or_else(|| "CPU reference renderer (no graphics adapter)".into());
    let ks = picked(stack.slices.len());
    let mut key_images = Vec::new();
    for &k in &ks {
        let window = slice_window(stack, k)?;
        let values = crate::study::load_slice(stack, k).map_err(|e| ExportError::Source(e.to_string()))?;
        let pixels = SlicePixels::new(
            stack.columns as usize,
            stack.rows as usize,
            values.channels,
            values.values,
            None,
            None,
        )
        .ok_or_else(|| ExportError::Build("the image's planes do not agree in size".into()))?;
        let style = SliceStyle {
            window_center: window.center,
            window_width: window.width,
            invert: false,
            attention: None,
            mask: None,
        };
        let image = render_key_image(&renderer, &std::sync::Arc::new(pixels), &style, spacing)?;
        key_images.push(KeyImageBlock {
            image,
            caption: format!("Image {} of {} (window {:.0} / {:.0})", k + 1, stack.slices.len(), window.center, window.width),
            colour_bar: None,
            heatmap: String::new(),
            legend: Vec::new(),
        });
    }

    let first = &stack.slices[0].instance;
    let mut study_lines = vec![format!(
        "{} series, {} image{} of {} × {} pixels",
        series.modality.clone().unwrap_or_else(|| "?".into()),
        stack.slices.len(),
        if stack.slices.len() == 1 { "" } else { "s" },
        stack.columns,
        stack.rows
    )];
    study_lines.push(if stack.geometry.is_none() {
        "Pictures only: the images carry no patient position and orientation, so Focal's model cannot analyse them (no labels, measurements of volume, SEG or Parametric Map).".into()
    } else {
        "Pictures only: no analysis was given for this report.".into()
    });
    if ks.len() < stack.slices.len() {
        study_lines.push(format!("{} of the {} images are shown, evenly spaced.", ks.len(), stack.slices.len()));
    }
    if burned.is_none() {
        study_lines.push(
            "The images do not say whether they carry burned-in annotation: look at the pictures for names or dates before sharing this report.".into(),
        );
    }
    let identity_line = if opts.keep_phi {
        study_lines.extend(identifier_lines(
            &first.patient,
            &first.study_date,
            &first.study_description,
            &first.accession_number,
        ));
        "Patient identifiers are KEPT in this report (--keep-phi was given).".to_string()
    } else {
        "Patient identifiers removed from this report's text (PS3.15 Basic Profile); the pictures are the images' pixels as stored.".to_string()
    };
    let content = ReportContent {
        title: "Focal picture report".into(),
        warning: super::NOT_FOR_DIAGNOSIS.into(),
        study_lines,
        identity_line,
        model_lines: Vec::new(),
        findings: Vec::new(),
        warnings: Vec::new(),
        measurements: Vec::new(),
        reliance_lines: Vec::new(),
        modality_table: Vec::new(),
        key_regions: None,
        key_regions_set_aside: Vec::new(),
        impression: String::new(),
        sign_off: "No model analysis and no reader's review are part of this report.".into(),
        limits: Vec::new(),
        key_images,
    };
    let files = write_staged(&opts.out, opts.force, |dir| {
        write_file(dir, "report.pdf", &write_pdf(content))?;
        let record = serde_json::json!({
            "files": ["report.pdf"],
            "kind": "pictures only: no analysis",
            "deidentified": !opts.keep_phi,
            "key_image_slices": ks,
            "renderer": renderer_name,
            "note": super::NOT_FOR_DIAGNOSIS,
        });
        let text = serde_json::to_string_pretty(&record).map_err(|e| ExportError::Build(e.to_string()))?;
        write_file(dir, "export.json", text.as_bytes())?;
        Ok(vec!["report.pdf".to_string(), "export.json".to_string()])
    })?;
    Ok(ExportSummary {
        files,
        deidentified: !opts.keep_phi,
        renderer: renderer_name,
        key_images: ks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_all_images_up_to_the_limit_then_evenly_spaced_with_both_ends() {
        assert_eq!(picked(0), Vec::<usize>::new());
        assert_eq!(picked(3), vec![0, 1, 2]);
        assert_eq!(picked(MAX_PICTURES), (0..MAX_PICTURES).collect::<Vec<_>>());
        let p = picked(100);
        assert_eq!(p.len(), MAX_PICTURES);
        assert_eq!((p[0], p[MAX_PICTURES - 1]), (0, 99));
        assert!(p.windows(2).all(|w| w[1] > w[0]));
    }
}
