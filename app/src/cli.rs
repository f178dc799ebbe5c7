//! Command line: parses the arguments and dispatches to `commands` (`focal` / `focal view`,
//! `info`, `analyze`, `batch`, `export`, `snapshot`, `compare`, `pacs`).

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "focal",
    version,
    about = "Review DICOM studies with an attention segmentation model",
    long_about = "Review DICOM studies with an attention segmentation model.\n\n`focal` with no command (or `focal view [PATHS]`) opens the viewer window; the commands below do the same work without it.",
    after_help = after_help()
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace). Logs never hold patient identifiers.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the studies and series under files, folders or DICOMDIRs, and the unreadable files.
    Info(crate::commands::info::InfoArgs),
    /// Open the viewer window (on DICOM files, folders or a DICOMDIR, if given).
    #[cfg(feature = "desktop")]
    View(crate::commands::view::ViewArgs),
    /// Write the report and DICOM exports (SEG, Parametric Map, key images) of an analysis.
    #[cfg(feature = "desktop")]
    Export(crate::commands::export::ExportArgs),
    /// Run the segmentation model on a series and write label map, attention map and summary.
    Analyze(crate::commands::analyze::AnalyzeArgs),
    /// List the analyses the window kept (newest first), with the ids `focal export --analysis` takes.
    #[cfg(feature = "desktop")]
    Analyses(crate::commands::analyses::AnalysesArgs),
    /// Analyse every series under many studies: one analysis folder each and results.csv
    /// (resumable: unchanged finished series are not run again).
    Batch(crate::commands::batch::BatchArgs),
    /// Compare two label maps of one series (analysis folders, NIfTI files or a DICOM SEG): Dice, volumes
    /// and the 95th percentile Hausdorff distance, label by label.
    Compare(crate::commands::compare::CompareArgs),
    /// Draw one view of a series as the window would (labels, attention, SEG, Parametric Map,
    /// NIfTI overlays) into a PNG.
    #[cfg(feature = "desktop")]
    Snapshot(crate::commands::snapshot::SnapshotArgs),
    /// Query, retrieve from and store to the DICOM nodes (PACS) you configured.
    Pacs(crate::commands::pacs::PacsArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell
    /// (e.g. `focal completions bash > ~/.local/share/bash-completion/completions/focal`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff; `focal man | man -l -`).
    Man,
}

impl Cli {
    /// Whether the command opens the window (which also logs to a file of its own).
    pub fn opens_window(&self) -> bool {
        #[cfg(feature = "desktop")]
        if matches!(self.command, None | Some(Command::View(_))) {
            return true;
        }
        false
    }
}

/// The end of `focal --help`: exit codes and environment variables.
fn after_help() -> String {
    format!("{}\n\n{}", crate::exit::HELP, crate::places::VARIABLES)
}

pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Some(Command::Info(args)) => crate::commands::info::info(&args),
        Some(Command::Analyze(args)) => crate::commands::analyze::analyze(&args),
        Some(Command::Batch(args)) => crate::commands::batch::batch(&args),
        Some(Command::Pacs(args)) => crate::commands::pacs::pacs(&args),
        Some(Command::Compare(args)) => crate::commands::compare::compare(&args),
        Some(Command::Completions { shell }) => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "focal", &mut std::io::stdout());
            Ok(crate::exit::OK)
        }
        Some(Command::Man) => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(crate::exit::OK)
        }
        #[cfg(feature = "desktop")]
        Some(Command::Analyses(args)) => crate::commands::analyses::analyses(&args),
        #[cfg(feature = "desktop")]
        Some(Command::Snapshot(args)) => crate::commands::snapshot::snapshot(&args),
        #[cfg(feature = "desktop")]
        Some(Command::Export(args)) => crate::commands::export::export(&args),
        #[cfg(feature = "desktop")]
        Some(Command::View(args)) => crate::commands::view::view(args),
        #[cfg(feature = "desktop")]
        None => crate::commands::view::view(crate::commands::view::ViewArgs {
            paths: Vec::new(),
            analyze: false,
            layout: None,
            overlays: Vec::new(),
            bench_frames: None,
            bench_out: None,
        }),
        #[cfg(not(feature = "desktop"))]
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            Ok(2)
        }
    }
}
