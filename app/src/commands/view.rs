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
    pub layout: Option<crate::ui::Layout>,
    /// Segmentations, parametric maps (DICOM) or NIfTI label / probability maps to show over
    /// the series once it has loaded, placed by patient coordinates.
    #[arg(long = "overlay", value_name = "FILE")]
    pub overlays: Vec<PathBuf>,
    /// Benchmark: time this many frames while the slice changes, then close (bench/frame_time.py).
    #[arg(long, hide = true, requires = "bench_out")]
    pub bench_frames: Option<usize>,
    /// Where the frame timings go (JSON).
    #[arg(long, hide = true)]
    pub bench_out: Option<PathBuf>,
}

fn parse_layout(s: &str) -> Result<crate::ui::Layout, String> {
    crate::ui::Layout::parse(s).ok_or_else(|| format!("unknown layout {s:?}: use 1x1, 1x3 or 2x2"))
}

pub fn view(args: ViewArgs) -> anyhow::Result<i32> {
    let ViewArgs {
        paths,
        analyze,
        layout,
        overlays,
        bench_frames,
        bench_out,
    } = args;
    for p in &overlays {
        if !p.is_file() {
            anyhow::bail!("{} is not a file", p.display());
        }
    }
    for p in &paths {
        if !p.exists() {
            anyhow::bail!("{} does not exist", p.display());
        }
    }
    if cfg!(target_os = "linux") && std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        anyhow::bail!(
            "there is no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set): run Focal in a desktop session or under Xvfb (`xvfb-run focal`), or use the commands that need no window (`focal --help`)"
        );
    }
    let options = crate::ui::WindowOptions {
        analyze,
        layout,
        bench_frames: bench_frames.zip(bench_out),
        overlays,
    };
    crate::ui::run(paths, options).map_err(|e| anyhow::anyhow!("the window could not be opened: {e}"))?;
    Ok(0)
}
