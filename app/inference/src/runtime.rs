//! Finding and loading the ONNX Runtime shared library (never downloaded at run time).

use std::path::PathBuf;
use std::sync::OnceLock;

use ort::environment::Environment;

use super::{InferenceError, Result};

pub const LIBRARY: &str = "libonnxruntime.so.1.31.1";

/// Places Focal looks for the library, in order: `FOCAL_ORT_LIB`, beside the executable,
/// the user cache (where scripts/fetch-onnxruntime.sh puts it).
pub fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("FOCAL_ORT_LIB") {
        out.push(PathBuf::from(p));
    }
    if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(PathBuf::from)) {
        out.push(dir.join(LIBRARY));
    }
    if let Ok(c) = crate::cache_dir() {
        out.push(c.join("onnxruntime").join(LIBRARY));
    }
    out
}

/// ONNX Runtime 1.31 on Linux sends telemetry (OneDS, a DNS lookup then HTTPS to a Microsoft
/// collector) unless `ORT_DISABLE_TELEMETRY` is set; ort also enables it by default. Focal
/// talks to no network, so the variable is set before the library loads. `main` calls this
/// before any thread starts; `environment` calls it again for library users (tests).
#[allow(unsafe_code)]
pub fn disable_telemetry() {
    if std::env::var_os("ORT_DISABLE_TELEMETRY").is_none() {
        // SAFETY: called first thing in `main`, before any other thread exists, so nothing can
        // read the environment concurrently; later calls find the variable set and write nothing.
        unsafe { std::env::set_var("ORT_DISABLE_TELEMETRY", "1") };
    }
}

struct Loaded {
    path: PathBuf,
    env: Environment,
}

static RUNTIME: OnceLock<std::result::Result<Loaded, (PathBuf, String)>> = OnceLock::new();

/// Loads the library once per process; later calls return the same outcome.
pub fn environment() -> Result<(&'static Environment, &'static PathBuf)> {
    let tried = candidates();
    let Some(path) = tried.iter().find(|p| p.is_file()).cloned() else {
        return Err(InferenceError::RuntimeMissing { tried });
    };
    let loaded = RUNTIME.get_or_init(|| {
        tracing::info!(path = %path.display(), "loading the ONNX Runtime library");
        disable_telemetry();
        let env = ort::init_from(&path)
            .map_err(|e| e.to_string())
            // ort turns ONNX Runtime's telemetry on by default, and 1.31 then looks up a
            // telemetry host by DNS during long runs: Focal talks to no network, so it is off.
            .and_then(|b| b.with_name("focal").with_telemetry(false).build().map_err(|e| e.to_string()));
        env.map(|env| Loaded {
            path: path.clone(),
            env,
        })
        .map_err(|e| (path.clone(), e))
    });
    match loaded {
        Ok(l) => Ok((&l.env, &l.path)),
        Err((path, reason)) => Err(InferenceError::RuntimeLoad {
            path: path.clone(),
            reason: reason.clone(),
        }),
    }
}
