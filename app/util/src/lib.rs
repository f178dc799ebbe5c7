//! focal-util: what every layer of Focal uses and nothing of Focal: atomic writes and output
//! folders, UIDs and pseudonyms, an error's chain on one line, where Focal keeps things.

pub mod outdir;
pub mod places;
pub mod uid;

/// Lower-case hexadecimal of bytes (how digests are written everywhere in Focal).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub use places::cache_dir;

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
