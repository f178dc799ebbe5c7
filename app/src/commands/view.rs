//! `focal` / `focal view`: the window.

use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ViewArgs {
    /// DICOM files, folders or DICOMDIR files to open.
    pub paths: Vec<PathBuf>,
    /// Run the model on the series as soon as it has loaded.
    #[arg(long)]
    pub analyze: bool,
}

pub fn view(paths: Vec<PathBuf>, analyze: bool) -> anyhow::Result<i32> {
    for p in &paths {
        if !p.exists() {
            anyhow::bail!("{} does not exist", p.display());
        }
    }
    crate::ui::run(paths, analyze)?;
    Ok(0)
}
