//! `focal info`: the studies and series under files, folders or DICOMDIRs.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::study::{self, Progress, Stack, StudySet};

#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// DICOM files, folders (searched recursively) or DICOMDIR files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Show patient name, ID and birth date (hidden by default).
    #[arg(long)]
    pub show_phi: bool,
    /// Also decode every image stack and report decoding time and failures.
    #[arg(long)]
    pub decode: bool,
}

#[derive(Serialize)]
struct InfoReport {
    patients: Vec<PatientReport>,
    unreadable: Vec<study::Unreadable>,
    non_dicom_files: usize,
    scan_seconds: f64,
}

#[derive(Serialize)]
struct PatientReport {
    label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    identifiers: Option<study::PatientInfo>,
    studies: Vec<StudyReport>,
}

#[derive(Serialize)]
struct StudyReport {
    uid: String,
    date: Option<String>,
    description: Option<String>,
    series: Vec<SeriesReport>,
}

#[derive(Serialize)]
struct SeriesReport {
    uid: String,
    number: Option<i64>,
    modality: Option<String>,
    description: Option<String>,
    stacks: Vec<StackReport>,
    non_image_objects: usize,
    /// Whether `focal analyze` with no --series runs on this series.
    analysed_by_default: bool,
    /// Why `analyze` and `batch` pass it over (what the series is), where they do.
    #[serde(skip_serializing_if = "Option::is_none")]
    not_analysed: Option<String>,
    /// The series this one's objects were made over (a SEG's, an SR's…), by UID.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    refers_to: Vec<String>,
    /// The same, as a person reads them (number, modality, description, or the UID when the
    /// series is not in what was scanned).
    #[serde(skip)]
    refers_to_titles: Vec<String>,
}

#[derive(Serialize)]
struct StackReport {
    images: usize,
    files: usize,
    rows: u32,
    columns: u32,
    samples_per_pixel: u16,
    plane: Option<&'static str>,
    /// Column, row and slice spacing in mm.
    spacing_mm: Option<[f64; 3]>,
    transfer_syntaxes: Vec<String>,
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decode: Option<DecodeReport>,
}

#[derive(Serialize)]
struct DecodeReport {
    first_slice_seconds: f64,
    volume_seconds: f64,
    skipped: Vec<study::SkippedSlice>,
    error: Option<String>,
}

fn transfer_syntax_name(uid: &str) -> String {
    use dicom_encoding::TransferSyntaxIndex;
    dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .get(uid)
        .map_or_else(|| uid.to_string(), |ts| ts.name().to_string())
}

fn decode_report(stack: &Stack) -> DecodeReport {
    let cancel = AtomicBool::new(false);
    let start = Instant::now();
    // Timed only: a failing first slice shows up below as skipped or as the volume's error.
    let _ = study::load_slice(stack, 0);
    let first_slice_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let volume = study::load_volume(stack, &|_: Progress| {}, &cancel);
    let volume_seconds = start.elapsed().as_secs_f64();
    let (skipped, error) = match volume {
        Ok(v) => (v.skipped, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    DecodeReport {
        first_slice_seconds,
        volume_seconds,
        skipped,
        error,
    }
}

fn stack_report(stack: &Stack, decode: bool) -> StackReport {
    let mut warnings: Vec<String> = stack.warnings.iter().map(ToString::to_string).collect();
    if stack.slices.len() > 1 && stack.geometry.is_none() && warnings.is_empty() {
        warnings.push("no geometry".into());
    }
    StackReport {
        images: stack.slices.len(),
        files: stack.file_count(),
        rows: stack.rows,
        columns: stack.columns,
        samples_per_pixel: stack.samples_per_pixel,
        plane: stack.plane,
        spacing_mm: stack.geometry.as_ref().map(|g| g.spacing),
        transfer_syntaxes: stack
            .transfer_syntaxes()
            .iter()
            .map(|t| transfer_syntax_name(t))
            .collect(),
        warnings,
        decode: decode.then(|| decode_report(stack)),
    }
}

fn build_report(set: &StudySet, args: &InfoArgs, scan_seconds: f64) -> InfoReport {
    // The bundled model's modalities decide what an analysis would take (any, if it is missing).
    let modalities = crate::inference::Manifest::load(&crate::inference::manifest::default_manifest_path())
        .map(|m| m.input.modalities)
        .unwrap_or_default();
    let default = set.choose_series(None, &modalities).ok().map(|c| c.series.uid.clone());
    InfoReport {
        patients: set
            .patients
            .iter()
            .enumerate()
            .map(|(i, p)| PatientReport {
                label: format!("patient {}", i + 1),
                identifiers: args.show_phi.then(|| p.info.clone()),
                studies: p
                    .studies
                    .iter()
                    .map(|s| StudyReport {
                        uid: s.uid.clone(),
                        date: s.date.clone(),
                        description: s.description.clone(),
                        series: s
                            .series
                            .iter()
                            .map(|se| {
                                let refers_to = se.referenced_series();
                                SeriesReport {
                                uid: se.uid.clone(),
                                number: se.number,
                                modality: se.modality.clone(),
                                description: se.description.clone(),
                                stacks: se.stacks.iter().map(|st| stack_report(st, args.decode)).collect(),
                                non_image_objects: se.non_image.len(),
                                analysed_by_default: default.as_deref() == Some(se.uid.as_str()),
                                refers_to_titles: refers_to
                                    .iter()
                                    .map(|uid| set.find_series(uid).map_or_else(|| format!("{uid} (not here)"), |r| r.title()))
                                    .collect(),
                                refers_to,
                                not_analysed: se.unsuitable(&modalities).map(|w| {
                                    let when = if w.can_be_named() { "not analysed unless named" } else { "never analysed" };
                                    format!("{when}: it {w}")
                                }),
                            }
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
        unreadable: set.unreadable.clone(),
        non_dicom_files: set.non_dicom,
        scan_seconds,
    }
}

pub fn info(args: &InfoArgs) -> anyhow::Result<i32> {
    let cancel = AtomicBool::new(false);
    let start = Instant::now();
    let set = StudySet::open(&args.paths, &|_: Progress| {}, &cancel).context("scanning failed")?;
    let report = build_report(&set, args, start.elapsed().as_secs_f64());
    tracing::info!(
        series = set.series().count(),
        unreadable = set.unreadable.len(),
        non_dicom = set.non_dicom,
        "scan finished"
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    let anything = report.patients.iter().any(|p| !p.studies.is_empty());
    if !anything {
        eprintln!("no readable DICOM found");
    }
    Ok(if anything { 0 } else { 1 })
}

fn or_dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

fn print_table(report: &InfoReport) {
    for p in &report.patients {
        match &p.identifiers {
            Some(id) => println!(
                "{}: name {}, ID {}, born {}, sex {}",
                p.label,
                or_dash(&id.name),
                or_dash(&id.id),
                or_dash(&id.birth_date),
                or_dash(&id.sex)
            ),
            None => println!("{} (identifiers hidden; --show-phi shows them)", p.label),
        }
        for s in &p.studies {
            println!("  study {} {} [{}]", or_dash(&s.date), or_dash(&s.description), s.uid);
            if s.series.iter().any(|se| se.analysed_by_default) {
                println!("    (* the series `focal analyze` takes when none is named)");
            }
            println!(
                "    {:>6}  {:<4} {:<28} {:>6}  {:<11} {:<30} {:<28} warnings",
                "#", "mod", "description", "images", "size", "spacing mm (plane)", "transfer syntax"
            );
            for se in &s.series {
                // `*`: the series `focal analyze` takes when none is named.
                let mark = if se.analysed_by_default { "*" } else { "" };
                let number = format!("{mark}{}", se.number.map_or("-".to_string(), |n| n.to_string()));
                let description: String = or_dash(&se.description).chars().take(28).collect();
                if se.stacks.is_empty() {
                    println!(
                        "    {number:>6}  {:<4} {description:<28} {:>6}  (no images: {} object(s))",
                        or_dash(&se.modality),
                        0,
                        se.non_image_objects
                    );
                }
                for (k, st) in se.stacks.iter().enumerate() {
                    let label = if se.stacks.len() > 1 {
                        format!("{number}.{}", k + 1)
                    } else {
                        number.clone()
                    };
                    let spacing = st
                        .spacing_mm
                        .map_or("-".to_string(), |sp| format!("{:.3}×{:.3}×{:.3}", sp[0], sp[1], sp[2]));
                    let spacing = format!("{spacing} ({})", st.plane.unwrap_or("?"));
                    let size = format!(
                        "{}×{}{}",
                        st.columns,
                        st.rows,
                        if st.samples_per_pixel == 3 { " RGB" } else { "" }
                    );
                    let ts = st.transfer_syntaxes.join(", ");
                    let mut warnings = st.warnings.join("; ");
                    if let Some(d) = &st.decode {
                        let status = match &d.error {
                            Some(e) => format!("DECODE FAILED: {e}"),
                            None if d.skipped.is_empty() => format!("decoded in {:.3} s", d.volume_seconds),
                            None => format!("{} slice(s) skipped", d.skipped.len()),
                        };
                        warnings = if warnings.is_empty() {
                            status
                        } else {
                            format!("{warnings}; {status}")
                        };
                    }
                    println!(
                        "    {label:>6}  {:<4} {description:<28} {:>6}  {size:<11} {spacing:<30} {ts:<28} {warnings}",
                        or_dash(&se.modality),
                        st.images
                    );
                }
                println!("            uid {}", se.uid);
                if let Some(why) = &se.not_analysed {
                    println!("            {why}");
                }
                if !se.refers_to_titles.is_empty() {
                    println!("            made over series {}", se.refers_to_titles.join(", "));
                }
            }
        }
    }
    if !report.unreadable.is_empty() {
        println!("unreadable files ({}):", report.unreadable.len());
        for u in &report.unreadable {
            println!("  {}: {}", u.path.display(), u.reason);
        }
    }
    if report.non_dicom_files > 0 {
        println!("{} non-DICOM file(s) skipped", report.non_dicom_files);
    }
}
