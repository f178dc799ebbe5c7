// Focal's study layer reads files by path: each input is written to one scratch file per
// process (in /dev/shm when there is one, so no disk is touched per run).
use std::path::PathBuf;

pub fn scratch(data: &[u8], name: &str) -> Option<PathBuf> {
    let dir = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let path = dir.join(format!("focal-fuzz-{}-{name}", std::process::id()));
    std::fs::write(&path, data).ok()?;
    Some(path)
}
