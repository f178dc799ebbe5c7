//! The model manifest (`models/<name>.json`): the contract between training and the app.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{InferenceError, Result};

/// Manifest versions this build understands: 1 (one slice in, probs and attention out) and
/// 2 (modality slots with neighbouring slices in, and modality attention out).
pub const SUPPORTED_VERSIONS: [u32; 2] = [1, 2];

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub name: String,
    pub version: String,
    pub file: String,
    pub sha256: String,
    pub input: InputSpec,
    pub outputs: Vec<OutputSpec>,
    pub labels: Vec<Label>,
    /// One-line description for people.
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub intended_use: Option<String>,
    /// Held-out evaluation results, as training wrote them.
    #[serde(default)]
    pub metrics: Option<serde_json::Value>,
    /// The range of all non-background labels together in healthy adults (mL).
    #[serde(default)]
    pub expected_total_ml: Option<[f64; 2]>,
    /// What the model cannot do, for the model card and every report.
    #[serde(default)]
    pub limits: Vec<String>,
    /// Steps applied to the label volume after the model, in order: "brain_extent" (needs
    /// `extent`), "brain_extractor" (needs `extractor`), "fluid_rim" (needs `fluid_rim`),
    /// "largest_component" and "tissue_em" (needs `tissue_em`).
    #[serde(default)]
    pub postprocess: Vec<String>,
    /// A second model that gives p(brain) over the whole volume (the "brain_extent" step).
    #[serde(default)]
    pub extent: Option<ExtentSpec>,
    /// A brain extractor trained on real scans (the "brain_extractor" step).
    #[serde(default)]
    pub extractor: Option<ExtractorSpec>,
    /// The "fluid_rim" step's setting.
    #[serde(default)]
    pub fluid_rim: Option<FluidRimSpec>,
    /// The "tissue_em" step's settings (the scan's own tissue model).
    #[serde(default)]
    pub tissue_em: Option<super::tissue::TissueEmSpec>,
    /// Key regions (where the scan departs from its own tissue model), found with the
    /// "tissue_em" step when this section is present.
    #[serde(default)]
    pub key_regions: Option<super::key_regions::KeyRegionSpec>,
    /// Folder the manifest was read from (model paths are relative to it).
    #[serde(skip)]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct InputSpec {
    pub name: String,
    /// e.g. ["N", 1, "H", "W"]: numbers are fixed sizes, strings are free dimensions.
    pub shape: Vec<serde_json::Value>,
    pub size_multiple: usize,
    pub pixel_spacing_mm: [f64; 2],
    pub normalisation: Normalisation,
    /// The DICOM Modality codes of the series the model takes (`MR`); empty: any. Series of
    /// another modality are passed over when none is named, and warned of when one is.
    #[serde(default)]
    pub modalities: Vec<String>,
    /// What each modality slot takes; one slot (the analysed series) when absent.
    #[serde(default = "one_slot")]
    pub slots: Vec<SlotSpec>,
    /// Neighbouring slices on each side of the analysed slice, per slot (2.5D context).
    #[serde(default)]
    pub context_slices: usize,
}

/// One modality slot of the input: slot 0 is the analysed series, later slots other series
/// of the same head resampled onto its grid (zeros when there is none).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SlotSpec {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub required: bool,
}

fn one_slot() -> Vec<SlotSpec> {
    vec![SlotSpec {
        name: "primary".into(),
        description: "the analysed series".into(),
        required: true,
    }]
}

/// The brain-extent model: a 3D volume in RAS axis order, resampled to `spacing_mm`, divided
/// by its `percentile` of values > 0 and clipped to [0, 1], zero-padded at the high ends to
/// multiples of `size_multiple`; its output is p(brain) on that grid, and tissue labels where
/// it is below `threshold` become background.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ExtentSpec {
    pub file: String,
    pub sha256: String,
    pub input: String,
    pub output: String,
    pub spacing_mm: f64,
    pub size_multiple: usize,
    pub percentile: f64,
    pub threshold: f32,
    #[serde(default)]
    pub description: Option<String>,
}

/// A two-stage 3D brain extractor (deepbet's design): `locate` sees the whole volume at
/// `locate_size`³ and finds the brain's bounding box, `segment` sees that box (grown by
/// `margin` of its size on each side) at `segment_size`³; voxels where its p(brain) is at
/// least `threshold` are the brain. See `extractor.rs` for the steps in full.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ExtractorSpec {
    /// Which extractor and version, for reports ("deepbet 1.0.2").
    pub name: String,
    pub locate: ModelFile,
    pub segment: ModelFile,
    pub locate_size: usize,
    pub segment_size: usize,
    pub margin: f64,
    pub threshold: f32,
    /// Where the files come from and under what licence, for the card and reports.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A model file beside the manifest and its sha256; input "image" [1, 1, X, Y, Z], output
/// "brain" of the same shape.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ModelFile {
    pub file: String,
    pub sha256: String,
}

/// The "fluid_rim" step: fluid-class voxels within `depth_mm` of the labelled brain's surface
/// become background (`postprocess::trim_fluid_rim`), or, with `label_as`, are left out of the
/// steps after it and given that label at the end (the extra-axial CSF is CSF, not background).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FluidRimSpec {
    pub depth_mm: f64,
    /// The name of the label the rim takes after the last step (e.g. "CSF"); None: background.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_as: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// The post-processing steps this build can apply.
pub const POSTPROCESS_STEPS: [&str; 5] =
    ["brain_extent", "brain_extractor", "fluid_rim", "largest_component", "tissue_em"];

#[cfg(test)]
impl ExtentSpec {
    /// A spec whose file does not matter (for tests of the pre-processing).
    pub fn for_tests() -> ExtentSpec {
        ExtentSpec {
            file: "brain-extent.onnx".into(),
            sha256: String::new(),
            input: "image".into(),
            output: "brain".into(),
            spacing_mm: 3.0,
            size_multiple: 8,
            percentile: 99.5,
            threshold: 0.5,
            description: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Normalisation {
    pub method: String,
    pub scope: String,
    pub percentile: f64,
    pub clip: [f32; 2],
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OutputSpec {
    pub name: String,
    #[serde(default)]
    pub display_range: Option<[f32; 2]>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Label {
    pub index: u8,
    pub name: String,
    pub color: [u8; 3],
    /// The range of this label's volume in healthy adults (mL); a volume outside it is flagged.
    #[serde(default)]
    pub expected_ml: Option<[f64; 2]>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest> {
        let bad = |reason: String| InferenceError::Manifest {
            path: path.to_path_buf(),
            reason,
        };
        tracing::info!(path = %path.display(), "reading the model manifest");
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let mut m: Manifest = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if !SUPPORTED_VERSIONS.contains(&m.manifest_version) {
            return Err(bad(format!(
                "manifest version {} (this Focal reads {SUPPORTED_VERSIONS:?})",
                m.manifest_version
            )));
        }
        let scope = m.input.normalisation.scope.as_str();
        if m.input.normalisation.method != "percentile" || !["each slice", "each slot's slab"].contains(&scope) {
            return Err(bad(
                "only percentile normalisation of each slice or of each slot's slab is supported".into(),
            ));
        }
        if let Some(step) = m
            .postprocess
            .iter()
            .find(|p| !POSTPROCESS_STEPS.contains(&p.as_str()))
        {
            return Err(bad(format!(
                "unknown post-processing step {step:?} (this Focal applies {POSTPROCESS_STEPS:?})"
            )));
        }
        if m.postprocess.iter().any(|p| p == "fluid_rim") {
            match &m.fluid_rim {
                None => return Err(bad("post-processing step \"fluid_rim\" needs a \"fluid_rim\" section".into())),
                Some(f) if !(f.depth_mm.is_finite() && f.depth_mm > 0.0 && f.depth_mm <= 20.0) => {
                    return Err(bad(format!("fluid_rim: depth_mm {} (above 0, at most 20)", f.depth_mm)));
                }
                Some(FluidRimSpec { label_as: Some(name), .. }) if m.label_named(name).is_none() => {
                    return Err(bad(format!(
                        "fluid_rim: label_as {name:?} is none of the model's labels ({})",
                        m.labels.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", ")
                    )));
                }
                Some(_) => {}
            }
        }
        if m.postprocess.iter().any(|p| p == "tissue_em") {
            let Some(t) = &m.tissue_em else {
                return Err(bad(
                    "post-processing step \"tissue_em\" needs a \"tissue_em\" section".into()
                ));
            };
            if let Some(problem) = t.problem() {
                return Err(bad(format!("tissue_em: {problem}")));
            }
            if let Err(missing) = super::tissue::TissueSlots::find(&m.labels, m.labels.len()) {
                return Err(bad(format!(
                    "post-processing step \"tissue_em\" needs labels named {missing:?}"
                )));
            }
        }
        if let Some(k) = &m.key_regions {
            if !m.postprocess.iter().any(|p| p == "tissue_em") {
                return Err(bad("\"key_regions\" needs the \"tissue_em\" post-processing step (its score is the tissue model's)".into()));
            }
            if let Some(problem) = k.problem() {
                return Err(bad(format!("key_regions: {problem}")));
            }
        }
        if m.uses_extent() && m.extent.is_none() {
            return Err(bad(
                "post-processing step \"brain_extent\" needs an \"extent\" section".into()
            ));
        }
        if m.uses_extractor() && m.extractor.is_none() {
            return Err(bad(
                "post-processing step \"brain_extractor\" needs an \"extractor\" section".into()
            ));
        }
        if let Some(e) = &m.extractor {
            let usable = (16..=512).contains(&e.locate_size)
                && (16..=512).contains(&e.segment_size)
                && e.margin.is_finite()
                && (0.0..=1.0).contains(&e.margin)
                && (0.0..1.0).contains(&e.threshold);
            if !usable {
                return Err(bad(format!(
                    "extractor: locate_size {} and segment_size {} (16–512), margin {} (0–1), threshold {} (0–1)",
                    e.locate_size, e.segment_size, e.margin, e.threshold
                )));
            }
        }
        if let Some(e) = &m.extent {
            let usable = e.spacing_mm.is_finite()
                && (0.5..=10.0).contains(&e.spacing_mm)
                && (1..=64).contains(&e.size_multiple)
                && (50.0..=100.0).contains(&e.percentile)
                && (0.0..1.0).contains(&e.threshold);
            if !usable {
                return Err(bad(format!(
                    "extent: spacing_mm {} (0.5–10), size_multiple {} (1–64), percentile {} (50–100), threshold {} (0–1)",
                    e.spacing_mm, e.size_multiple, e.percentile, e.threshold
                )));
            }
        }
        if m.input.slots.is_empty() || m.input.slots.len() > 8 || m.input.context_slices > 8 {
            return Err(bad("1 to 8 slots and at most 8 context slices on each side".into()));
        }
        if m.input.size_multiple == 0 || m.labels.is_empty() {
            return Err(bad("size_multiple and labels must be set".into()));
        }
        if !["probs", "attention"]
            .iter()
            .all(|n| m.outputs.iter().any(|o| o.name == *n))
        {
            return Err(bad("outputs must include probs and attention".into()));
        }
        // Model files live beside the manifest: a relative path without "..", so a manifest
        // cannot make Focal read (and print the digest of) a file elsewhere.
        let extractor_files = m.extractor.iter().flat_map(|e| [&e.locate.file, &e.segment.file]);
        let atlas_file = m.tissue_em.as_ref().and_then(|t| t.deep_gm_atlas.as_ref()).map(|a| &a.file);
        for file in std::iter::once(&m.file)
            .chain(m.extent.as_ref().map(|e| &e.file))
            .chain(extractor_files)
            .chain(atlas_file)
        {
            let inside = !file.is_empty()
                && Path::new(file)
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
            if !inside {
                return Err(bad(format!(
                    "model file {file:?} is not a path inside the manifest's folder (no absolute paths, no \"..\")"
                )));
            }
        }
        m.dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Ok(m)
    }

    /// Channels of the model input: each slot's slice and its neighbours.
    pub fn input_channels(&self) -> usize {
        self.input.slots.len() * (2 * self.input.context_slices + 1)
    }

    /// The name of modality slot `slot` ("primary", "second", …).
    pub fn slot_name(&self, slot: usize) -> String {
        self.input
            .slots
            .get(slot)
            .map_or_else(|| format!("slot {slot}"), |s| s.name.clone())
    }

    /// Whether the model outputs weights over its modality slots.
    pub fn has_modality_attention(&self) -> bool {
        self.outputs.iter().any(|o| o.name == "modality_attention")
    }

    pub fn model_path(&self) -> PathBuf {
        self.dir.join(&self.file)
    }

    /// The brain-extent model's file, when the manifest has one.
    /// The brain-extent model's file, when the labels go through it (a manifest may keep the
    /// section without the step: it is then neither read nor loaded).
    pub fn extent_path(&self) -> Option<PathBuf> {
        self.extent.as_ref().filter(|_| self.uses_extent()).map(|e| self.dir.join(&e.file))
    }

    /// The brain extractor's two files and their sha256s (locate, segment), when it has one.
    pub fn extractor_files(&self) -> Vec<(PathBuf, &str)> {
        self.extractor.iter().flat_map(|e| [&e.locate, &e.segment]).map(|f| (self.dir.join(&f.file), f.sha256.as_str())).collect()
    }

    /// The tissue model's deep grey-matter atlas, when the labels go through the tissue model
    /// and its section names one (as for the extent, a section without its step is not loaded).
    pub fn deep_gm_atlas(&self) -> Option<&super::tissue::atlas::DeepGmAtlasSpec> {
        self.tissue_em
            .as_ref()
            .filter(|_| self.postprocess.iter().any(|p| p == "tissue_em"))
            .and_then(|t| t.deep_gm_atlas.as_ref())
    }

    /// Whether the labels go through the brain extractor.
    pub fn uses_extractor(&self) -> bool {
        self.postprocess.iter().any(|p| p == "brain_extractor")
    }

    /// The position among the model's classes of the label with this name (case-insensitive).
    pub fn label_named(&self, name: &str) -> Option<usize> {
        self.labels.iter().position(|l| l.name.eq_ignore_ascii_case(name))
    }

    /// Whether the labels go through the brain extent.
    pub fn uses_extent(&self) -> bool {
        self.postprocess.iter().any(|p| p == "brain_extent")
    }

    pub fn attention_display_range(&self) -> [f32; 2] {
        self.outputs
            .iter()
            .find(|o| o.name == "attention")
            .and_then(|o| o.display_range)
            .unwrap_or([0.0, 1.0])
    }

    /// The sha256 of the model file and of the brain-extent model's (when the manifest has
    /// one), each file read once.
    pub fn digests(&self) -> Result<(String, Option<String>)> {
        let extent = self.extent_path().map(|p| file_digest(&p)).transpose()?;
        Ok((file_digest(&self.model_path())?, extent))
    }

    /// The sha256 of each brain-extractor file (locate, segment); a missing one is named with
    /// the fix (they are made by scripts/setup.sh, not shipped).
    pub fn extractor_digests(&self) -> Result<Vec<String>> {
        let name = self.extractor.as_ref().map_or("", |e| e.name.as_str());
        self.extractor_files()
            .into_iter()
            .map(|(path, _)| {
                if !path.exists() {
                    return Err(InferenceError::ModelLoad(format!(
                        "the brain extractor ({name}) file {} is missing: scripts/setup.sh makes it from the extractor's wheel on PyPI",
                        path.display()
                    )));
                }
                file_digest(&path)
            })
            .collect()
    }

    /// Checks `digests()`, `extractor_digests()` and the deep grey-matter atlas's (`atlas`, when
    /// the manifest uses one) against the manifest's sha256s (the model's last); the error names
    /// the file that differs.
    pub fn check_digests(&self, model: &str, extent: Option<&str>, extractor: &[String], atlas: Option<&str>) -> Result<()> {
        if let (Some(spec), Some(actual)) = (self.deep_gm_atlas(), atlas) {
            check_digest(self.dir.join(&spec.file), actual, &spec.sha256)?;
        }
        for ((path, expected), actual) in self.extractor_files().into_iter().zip(extractor) {
            check_digest(path, actual, expected)?;
        }
        if let (Some(path), Some(e), Some(actual)) = (self.extent_path(), &self.extent, extent) {
            check_digest(path, actual, &e.sha256)?;
        }
        check_digest(self.model_path(), model, &self.sha256)
    }
}

/// The largest model file Focal reads (ONNX's protobuf limit is 2 GiB; Focal's models are MBs).
const MAX_MODEL_BYTES: u64 = 2 << 30;

pub(crate) fn file_digest(path: &Path) -> Result<String> {
    // A regular file of a sane size, checked before reading: a device (/dev/zero) or a fifo
    // would never end.
    let meta = std::fs::metadata(path).map_err(|e| InferenceError::ModelLoad(format!("{e}: {}", path.display())))?;
    if !meta.is_file() {
        return Err(InferenceError::ModelLoad(format!("not a regular file: {}", path.display())));
    }
    if meta.len() == 0 || meta.len() > MAX_MODEL_BYTES {
        return Err(InferenceError::ModelLoad(format!(
            "{} bytes is no model file (1 byte to 2 GiB): {}",
            meta.len(),
            path.display()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| InferenceError::ModelLoad(format!("{e}: {}", path.display())))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

/// Ok if the file's digest `actual` is `expected`, else the error that names both.
fn check_digest(path: PathBuf, actual: &str, expected: &str) -> Result<()> {
    if actual != expected.to_ascii_lowercase() {
        return Err(InferenceError::ModelHash {
            file: path,
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

pub use focal_util::hex;

/// The manifest shipped with Focal: beside the executable's `models/`, or the source tree's.
pub fn default_manifest_path() -> PathBuf {
    let name = "brain-tissue.json";
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        for candidate in [dir.join("models").join(name), dir.join("../../models").join(name)] {
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models").join(name)
}
