//! focal-util: what every layer of Focal uses and nothing of Focal: atomic writes and output
//! folders, UIDs and pseudonyms, an error's chain on one line, the cache folder.

pub mod outdir;
pub mod uid;

/// Lower-case hexadecimal of bytes (how digests are written everywhere in Focal).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Focal's cache folder: `$FOCAL_CACHE`, else `~/.cache/focal` (the ONNX Runtime library,
/// retrieved studies).
pub fn cache_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("FOCAL_CACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/focal")))
}

/// An error and its causes on one line ("a: b: c").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
