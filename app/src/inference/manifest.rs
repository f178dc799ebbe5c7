//! The model manifest (`models/<name>.json`): the contract between training and the app.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{InferenceError, Result};

/// Manifest versions this build understands.
pub const SUPPORTED_VERSION: u32 = 1;

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
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest> {
        let bad = |reason: String| InferenceError::Manifest {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let mut m: Manifest = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if m.manifest_version != SUPPORTED_VERSION {
            return Err(bad(format!(
                "manifest version {} (this Focal reads {SUPPORTED_VERSION})",
                m.manifest_version
            )));
        }
        if m.input.normalisation.method != "percentile" || m.input.normalisation.scope != "each slice" {
            return Err(bad("only per-slice percentile normalisation is supported".into()));
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
        m.dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Ok(m)
    }

    pub fn model_path(&self) -> PathBuf {
        self.dir.join(&self.file)
    }

    pub fn attention_display_range(&self) -> [f32; 2] {
        self.outputs
            .iter()
            .find(|o| o.name == "attention")
            .and_then(|o| o.display_range)
            .unwrap_or([0.0, 1.0])
    }

    /// Checks the model file against the manifest's sha256; returns the actual digest.
    pub fn verify(&self) -> Result<String> {
        let path = self.model_path();
        let bytes = std::fs::read(&path).map_err(|e| InferenceError::ModelLoad(format!("{e}: {}", path.display())))?;
        let actual = hex(&Sha256::digest(&bytes));
        if actual != self.sha256.to_ascii_lowercase() {
            return Err(InferenceError::ModelHash {
                file: path,
                expected: self.sha256.clone(),
                actual,
            });
        }
        Ok(actual)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

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
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models").join(name)
}
