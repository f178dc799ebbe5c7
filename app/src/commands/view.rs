//! `focal` / `focal view`: the window.

use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ViewArgs {
    /// DICOM files, folders or DICOMDIR files to open.
    pub paths: Vec<PathBuf>,
    /// Run the model on the series as soon as it has loaded.
    #[arg(long)]
    pub analyze: bool,
    /// The window's layout: 1x1 (acquired slices), 1x3 (axial, coronal, sagittal) or 2x2
    /// (the three planes and a maximum-intensity projection).
    #[arg(long, value_parser = parse_layout)]
    pub layout: Option<crate::ui::mpr::Layout>,
}

fn parse_layout(s: &str) -> Result<crate::ui::mpr::Layout, String> {
    crate::ui::mpr::Layout::parse(s).ok_or_else(|| format!("unknown layout {s:?}: use 1x1, 1x3 or 2x2"))
}

pub fn view(args: ViewArgs) -> anyhow::Result<i32> {
    let ViewArgs { paths, analyze, layout } = args;
    for p in &paths {
        if !p.exists() {
            anyhow::bail!("{} does not exist", p.display());
        }
    }
    crate::ui::run(paths, analyze, layout)?;
    Ok(0)
}
