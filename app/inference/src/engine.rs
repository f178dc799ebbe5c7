//! An ONNX Runtime session for a manifest's model, on the execution provider that really runs.

use ndarray::Array4;
use ort::session::{Session, builder::GraphOptimizationLevel};
use ort::value::{Tensor, ValueType};
use serde::Serialize;

use super::manifest::Manifest;
use super::{InferenceError, Result, runtime};

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, serde::Deserialize)]
pub enum Device {
    /// CUDA when it works, else CPU (and say why).
    Auto,
    Cpu,
    /// CUDA or nothing.
    Cuda,
}

/// The execution provider that actually runs, and why it is that one.
#[derive(Debug, Clone, Serialize)]
pub struct Provider {
    pub name: &'static str,
    /// Why CUDA is not used, when it was asked for (auto) and failed.
    pub fallback_reason: Option<String>,
}

impl Provider {
    /// The provider and, after a fallback, why CUDA is not used.
    pub fn describe(&self) -> String {
        match &self.fallback_reason {
            Some(reason) => format!("{} (CUDA not used: {reason})", self.name),
            None => self.name.to_string(),
        }
    }
}

/// One batch's outputs, flattened: probs [n, C, h, w], attention [n, h, w] and, for models
/// with modality slots, modality attention [n, slots, h, w].
pub struct ModelOutput {
    pub probs: Vec<f32>,
    pub attention: Vec<f32>,
    pub modality: Option<Vec<f32>>,
}

pub struct Engine {
    session: Session,
    /// The brain-extent model (manifests with an `extent`), on the CPU: it runs once per volume.
    extent: Option<Session>,
    pub manifest: Manifest,
    pub provider: Provider,
    /// sha256 of the model file as loaded.
    pub sha256: String,
    /// sha256 of the brain-extent model file as loaded (manifests with an extent).
    pub extent_sha256: Option<String>,
    /// The brain extractor's two models (locate, segment), on the CPU: they run once per volume.
    extractor: Vec<Session>,
    /// sha256 of the brain extractor's files as loaded (locate, segment).
    pub extractor_sha256: Vec<String>,
    /// The tissue model's deep grey-matter atlas (manifests whose `tissue_em` names one).
    pub deep_gm_atlas: Option<super::tissue::atlas::DeepGmAtlas>,
    pub verified: bool,
}

fn short(e: impl std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

impl Engine {
    /// Verifies the model against its manifest, loads ONNX Runtime and creates the session
    /// (ONNX Runtime's own thread count: one per core).
    pub fn open(manifest: Manifest, device: Device, allow_unverified: bool) -> Result<Engine> {
        Self::open_with_threads(manifest, device, allow_unverified, None)
    }

    /// As [`Engine::open`], with `threads` intra-op threads for the CPU provider (a batch
    /// sharing a node with other tasks asks for its share of the cores).
    pub fn open_with_threads(
        manifest: Manifest,
        device: Device,
        allow_unverified: bool,
        threads: Option<usize>,
    ) -> Result<Engine> {
        let (sha256, extent_sha256) = manifest.digests()?;
        let extractor_sha256 = manifest.extractor_digests()?;
        let deep_gm_atlas = manifest
            .deep_gm_atlas()
            .map(|spec| super::tissue::atlas::DeepGmAtlas::load(&manifest.dir, spec))
            .transpose()?;
        let atlas_sha256 = deep_gm_atlas.as_ref().map(|a| a.sha256.as_str());
        let verified = match manifest.check_digests(&sha256, extent_sha256.as_deref(), &extractor_sha256, atlas_sha256) {
            Ok(()) => true,
            Err(InferenceError::ModelHash { file, .. }) if allow_unverified => {
                tracing::warn!(
                    file = %file.display(),
                    "model sha256 does not match its manifest; running it because --allow-unverified-model was given"
                );
                false
            }
            Err(e) => return Err(e),
        };
        let builder = session_builder(threads)?;
        let (mut builder, provider) = match device {
            Device::Cpu => (
                builder,
                Provider {
                    name: "CPU",
                    fallback_reason: None,
                },
            ),
            Device::Auto | Device::Cuda => {
                let cuda = ort::ep::CUDA::default().with_device_id(0).build().error_on_failure();
                match builder.with_execution_providers([cuda]) {
                    Ok(b) => (
                        b,
                        Provider {
                            name: "CUDA",
                            fallback_reason: None,
                        },
                    ),
                    Err(e) => {
                        let reason = cuda_reason(&short(&e));
                        if device == Device::Cuda {
                            return Err(InferenceError::CudaUnavailable(reason));
                        }
                        tracing::warn!(%reason, "CUDA unavailable, running on CPU");
                        (
                            e.recover(),
                            Provider {
                                name: "CPU",
                                fallback_reason: Some(reason),
                            },
                        )
                    }
                }
            }
        };
        let session = builder
            .commit_from_file(manifest.model_path())
            .map_err(|e| InferenceError::ModelLoad(short(e)))?;
        let extent =
            match manifest.extent_path() {
                Some(path) => Some(session_builder(threads)?.commit_from_file(&path).map_err(|e| {
                    InferenceError::ModelLoad(format!("brain extent {}: {}", path.display(), short(e)))
                })?),
                None => None,
            };
        let extractor = manifest
            .extractor_files()
            .into_iter()
            .map(|(path, _)| {
                let load = |e: ort::Error| {
                    InferenceError::ModelLoad(format!("brain extractor {}: {}", path.display(), short(e)))
                };
                // One run per volume on 256³: without the arena and the memory pattern, its
                // activations are freed as it goes, which keeps the analysis under 1 GiB.
                session_builder(threads)?
                    .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(false).build()])
                    .map_err(|e| load(e.into()))?
                    .with_memory_pattern(false)
                    .map_err(|e| load(e.into()))?
                    .commit_from_file(&path)
                    .map_err(load)
            })
            .collect::<Result<Vec<_>>>()?;
        let engine = Engine {
            deep_gm_atlas,
            session,
            extent,
            extent_sha256,
            extractor,
            extractor_sha256,
            manifest,
            provider,
            sha256,
            verified,
        };
        engine.check_signature()?;
        Ok(engine)
    }

    /// The model's real inputs and outputs must be what the manifest says.
    fn check_signature(&self) -> Result<()> {
        let m = &self.manifest;
        if let (Some(session), Some(spec)) = (&self.extent, &m.extent) {
            let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
            let outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
            if inputs != [spec.input.as_str()] || !outputs.contains(&spec.output.as_str()) {
                return Err(InferenceError::ModelMismatch(format!(
                    "brain extent model has inputs {inputs:?} and outputs {outputs:?}, manifest says {:?} → {:?}",
                    spec.input, spec.output
                )));
            }
        }
        let inputs: Vec<&str> = self.session.inputs().iter().map(|i| i.name()).collect();
        if inputs != [m.input.name.as_str()] {
            return Err(InferenceError::ModelMismatch(format!(
                "model inputs {inputs:?}, manifest input {:?}",
                m.input.name
            )));
        }
        let dims = |vt: &ValueType| match vt {
            ValueType::Tensor { shape, .. } => Some(shape.iter().copied().collect::<Vec<i64>>()),
            _ => None,
        };
        let input_dims = dims(self.session.inputs()[0].dtype()).unwrap_or_default();
        let declared: Vec<Option<i64>> = m.input.shape.iter().map(serde_json::Value::as_i64).collect();
        let agrees = input_dims.len() == declared.len()
            && input_dims.iter().zip(&declared).all(|(&real, want)| match want {
                Some(w) => real == *w,
                None => real < 0, // a free dimension in the manifest must be dynamic in the model
            });
        let channels = m.input_channels() as i64;
        if !agrees || declared.get(1) != Some(&Some(channels)) {
            return Err(InferenceError::ModelMismatch(format!(
                "model input shape {input_dims:?} (-1 = dynamic), manifest input shape {:?} ({} slots × {} slices = {channels} channels)",
                m.input.shape,
                m.input.slots.len(),
                2 * m.input.context_slices + 1
            )));
        }
        let mut wanted = vec![("probs", m.labels.len() as i64), ("attention", 1)];
        if m.has_modality_attention() {
            wanted.push(("modality_attention", m.input.slots.len() as i64));
        }
        for (out, channels) in wanted {
            let found = self.session.outputs().iter().find(|o| o.name() == out);
            let Some(found) = found else {
                let names: Vec<&str> = self.session.outputs().iter().map(|o| o.name()).collect();
                return Err(InferenceError::ModelMismatch(format!(
                    "model outputs {names:?}, manifest needs {out:?}"
                )));
            };
            let d = dims(found.dtype()).unwrap_or_default();
            if d.len() != 4 || (d[1] >= 0 && d[1] != channels) {
                return Err(InferenceError::ModelMismatch(format!(
                    "model output {out} has shape {d:?}, manifest expects [N, {channels}, H, W]"
                )));
            }
        }
        Ok(())
    }

    pub fn classes(&self) -> usize {
        self.manifest.labels.len()
    }

    /// Modality slots of the input.
    pub fn slots(&self) -> usize {
        self.manifest.input.slots.len()
    }

    /// Runs the brain-extent model on a normalised volume [x, y, z] (C order); p(brain) back.
    pub fn run_extent(&mut self, values: Vec<f32>, [x, y, z]: [usize; 3]) -> Result<Vec<f32>> {
        let (Some(session), Some(spec)) = (self.extent.as_mut(), self.manifest.extent.as_ref()) else {
            return Err(InferenceError::Run("this model has no brain extent".into()));
        };
        let array =
            ndarray::Array5::from_shape_vec((1, 1, x, y, z), values).map_err(|e| InferenceError::Run(e.to_string()))?;
        let tensor = Tensor::from_array(array).map_err(|e| InferenceError::Run(short(e)))?;
        let outputs = session
            .run(ort::inputs![spec.input.clone() => tensor])
            .map_err(|e| InferenceError::Run(format!("brain extent: {}", short(e))))?;
        let brain = outputs[spec.output.as_str()]
            .try_extract_array::<f32>()
            .map_err(|e| InferenceError::Run(short(e)))?;
        if brain.shape() != [1, 1, x, y, z] {
            return Err(InferenceError::ModelMismatch(format!(
                "brain extent output has shape {:?} for input [1, 1, {x}, {y}, {z}]",
                brain.shape()
            )));
        }
        Ok(brain.iter().copied().collect())
    }

    /// Runs the brain extractor's model `stage` (0 locate, 1 segment) on a normalised volume
    /// [x, y, z] (C order); p(brain) back, on the same grid.
    pub fn run_extractor(&mut self, stage: usize, values: Vec<f32>, [x, y, z]: [usize; 3]) -> Result<Vec<f32>> {
        let Some(session) = self.extractor.get_mut(stage) else {
            return Err(InferenceError::Run("this model has no brain extractor".into()));
        };
        let array =
            ndarray::Array5::from_shape_vec((1, 1, x, y, z), values).map_err(|e| InferenceError::Run(e.to_string()))?;
        let tensor = Tensor::from_array(array).map_err(|e| InferenceError::Run(short(e)))?;
        let outputs = session
            .run(ort::inputs!["image" => tensor])
            .map_err(|e| InferenceError::Run(format!("brain extractor: {}", short(e))))?;
        let Some(brain) = outputs.get("brain") else {
            return Err(InferenceError::ModelMismatch("the brain extractor has no output \"brain\"".into()));
        };
        let brain = brain.try_extract_array::<f32>().map_err(|e| InferenceError::Run(short(e)))?;
        if brain.shape() != [1, 1, x, y, z] {
            return Err(InferenceError::ModelMismatch(format!(
                "brain extractor output has shape {:?} for input [1, 1, {x}, {y}, {z}]",
                brain.shape()
            )));
        }
        Ok(brain.iter().copied().collect())
    }

    /// Runs a batch of normalised inputs [n, channels, h, w] (channels as the manifest says).
    pub fn run(&mut self, images: Vec<f32>, n: usize, h: usize, w: usize) -> Result<ModelOutput> {
        let channels = self.manifest.input_channels();
        let slots = self.slots();
        let has_modality = self.manifest.has_modality_attention();
        let array =
            Array4::from_shape_vec((n, channels, h, w), images).map_err(|e| InferenceError::Run(e.to_string()))?;
        let tensor = Tensor::from_array(array).map_err(|e| InferenceError::Run(short(e)))?;
        let input = self.manifest.input.name.clone();
        let classes = self.classes();
        let outputs = self
            .session
            .run(ort::inputs![input => tensor])
            .map_err(|e| InferenceError::Run(short(e)))?;
        let probs = outputs["probs"]
            .try_extract_array::<f32>()
            .map_err(|e| InferenceError::Run(short(e)))?;
        let attention = outputs["attention"]
            .try_extract_array::<f32>()
            .map_err(|e| InferenceError::Run(short(e)))?;
        if probs.shape() != [n, classes, h, w] || attention.shape() != [n, 1, h, w] {
            return Err(InferenceError::ModelMismatch(format!(
                "outputs have shapes {:?} and {:?} for input [{n}, {channels}, {h}, {w}]",
                probs.shape(),
                attention.shape()
            )));
        }
        let modality = if has_modality {
            let m = outputs["modality_attention"]
                .try_extract_array::<f32>()
                .map_err(|e| InferenceError::Run(short(e)))?;
            if m.shape() != [n, slots, h, w] {
                return Err(InferenceError::ModelMismatch(format!(
                    "modality_attention has shape {:?} for input [{n}, {channels}, {h}, {w}]",
                    m.shape()
                )));
            }
            Some(m.iter().copied().collect())
        } else {
            None
        };
        Ok(ModelOutput {
            probs: probs.iter().copied().collect(),
            attention: attention.iter().copied().collect(),
            modality,
        })
    }
}

/// A session builder with full graph optimisation and, when given, `threads` intra-op threads.
fn session_builder(threads: Option<usize>) -> Result<ort::session::builder::SessionBuilder> {
    let (env, _) = runtime::environment()?;
    let builder = Session::builder(env)
        .map_err(|e| InferenceError::ModelLoad(short(e)))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| InferenceError::ModelLoad(short(e)))?;
    match threads {
        Some(n) => builder
            .with_intra_threads(n.max(1))
            .map_err(|e| InferenceError::ModelLoad(short(e))),
        None => Ok(builder),
    }
}

/// Turns ONNX Runtime's CUDA registration error into what the user should do.
fn cuda_reason(error: &str) -> String {
    let lower = error.to_ascii_lowercase();
    let hint = if lower.contains("not available") || lower.contains("not enabled") || lower.contains("providers_cuda") {
        "the loaded ONNX Runtime library has no CUDA provider (install onnxruntime-gpu 1.31.1: bench/gpu-check.sh)"
    } else if lower.contains("libcudnn") || lower.contains("libcublas") || lower.contains("libcudart") {
        "CUDA or cuDNN libraries are missing (the nvidia-*-cu13 wheels provide them)"
    } else if lower.contains("driver") {
        "no usable NVIDIA driver"
    } else {
        "CUDA provider registration failed"
    };
    format!("{hint}: {error}")
}
