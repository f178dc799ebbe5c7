//! `focal pacs`: the configured DICOM nodes (DIMSE or DICOMweb), and echo, find, get and store
//! against them. Nothing here talks to the network unless a node is named on the command line.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Context;

use crate::pacs::{self, Auth, Config, Endpoint, FindLevel, Node, Query, WebNode, nodes};

#[derive(clap::Args, Debug)]
pub struct PacsArgs {
    /// The node list (default: `pacs.json` under $FOCAL_CONFIG_DIR, $XDG_CONFIG_HOME/focal or ~/.config/focal).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub action: PacsAction,
}

#[derive(clap::Subcommand, Debug)]
pub enum PacsAction {
    /// List the configured nodes.
    Nodes,
    /// Add a node (or change the one with that name).
    Add {
        name: String,
        /// The node's AE title.
        #[arg(long)]
        ae: String,
        #[arg(long)]
        host: String,
        #[arg(long)]
        port: u16,
        /// Focal's AE title towards this node (the node must know it).
        #[arg(long, default_value = nodes::DEFAULT_OUR_AE)]
        our_ae: String,
        /// Seconds to wait for a connection or an answer (an answer may take one more second
        /// for each 64 KiB it brings).
        #[arg(long, default_value_t = nodes::DEFAULT_TIMEOUT_S)]
        timeout: u64,
        /// The largest data set taken from this node in one message, in MiB.
        #[arg(long, default_value_t = nodes::DEFAULT_MAX_DATASET_MB)]
        max_dataset_mb: u64,
    },
    /// Add a DICOMweb server (or change the node with that name). Secrets are read from
    /// standard input, never from the command line.
    AddWeb {
        name: String,
        /// The DICOMweb root, e.g. https://pacs.example.org/dicom-web.
        #[arg(long)]
        url: String,
        /// HTTP basic authentication as this user; the password is read from standard input.
        #[arg(long, requires = "password_stdin")]
        user: Option<String>,
        /// Read the basic-authentication password from standard input (one line).
        #[arg(long, requires = "user")]
        password_stdin: bool,
        /// Read a bearer token from standard input (one line).
        #[arg(long, conflicts_with = "user")]
        token_stdin: bool,
        /// PEM file of the certificate authorities to trust for this server.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Seconds to wait for a connection or an answer.
        #[arg(long, default_value_t = nodes::DEFAULT_TIMEOUT_S)]
        timeout: u64,
    },
    /// Remove a node.
    Remove { name: String },
    /// C-ECHO (or, for a DICOMweb server, a one-study query): is the node there and does it accept Focal?
    Echo { node: String },
    /// C-FIND or QIDO-RS: studies (or, with --study, its series) matching the keys.
    Find {
        node: String,
        /// Patient name, with DICOM wildcards (`DOE^*`).
        #[arg(long)]
        patient_name: Option<String>,
        #[arg(long)]
        patient_id: Option<String>,
        /// Study date or range: 20240131, 20240101-20241231, 20240101-, -20241231.
        #[arg(long)]
        date: Option<String>,
        /// Modality (in the study, or of the series with --study).
        #[arg(long)]
        modality: Option<String>,
        #[arg(long)]
        accession: Option<String>,
        /// List the series of this study instead of studies.
        #[arg(long)]
        study: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// C-GET or WADO-RS: retrieve a study (or one series) into the local cache; run again to resume.
    Get {
        node: String,
        #[arg(long)]
        study: String,
        #[arg(long)]
        series: Option<String>,
        /// The cache (default: $FOCAL_CACHE/retrieved or ~/.cache/focal/retrieved); the study
        /// lands in a folder named by a hash of its UID.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// C-MOVE: have the node send a study (or one series) to Focal, which listens on --listen
    /// while the move runs (the node must know Focal's AE title at that address).
    Move {
        node: String,
        #[arg(long)]
        study: String,
        #[arg(long)]
        series: Option<String>,
        /// Where Focal's storage SCP listens, HOST:PORT (only during the move, only for this node).
        #[arg(long, default_value = "0.0.0.0:11112")]
        listen: String,
        /// The cache, as for `get`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// C-STORE or STOW-RS: send DICOM files (e.g. `focal export` output, de-identified unless
    /// it was exported with --keep-phi) to the node.
    Store {
        node: String,
        /// DICOM files or folders of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

pub use crate::pacs::default_cache;

/// The files to store: each file given, and the Part 10 files under each folder given.
fn dicom_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let found = crate::study::scan::collect_files(std::slice::from_ref(p))?;
            out.extend(found.into_iter().filter(|f| crate::study::open::is_part10(f)));
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// The retrieve's bar (instances received, out of the node's count once it says).
fn retrieve_bar() -> (crate::commands::progress::Bar, impl Fn(usize, Option<usize>) + Sync) {
    let bar = crate::commands::progress::Bar::new("instances", None);
    let shown = bar.clone();
    (bar, move |done: usize, total: Option<usize>| shown.set(done as u64, total.map(|t| t as u64)))
}

fn resume_hint(what: &str, node: &str, cache: &std::path::Path, study: &str) -> String {
    format!(
        "{what} from {node} (what arrived is kept in {}; run the same command again to resume)",
        pacs::query::study_folder(cache, study).display()
    )
}

/// Prints what a retrieve brought; exit 1 when something did not arrive.
fn report(s: &pacs::GetSummary, json: bool) -> anyhow::Result<i32> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
    } else {
        println!(
            "{} instance(s) received ({:.1} MB in {:.2} s), {} already there, {} failed; open {}",
            s.received,
            s.bytes as f64 / 1e6,
            s.seconds,
            s.already_had,
            s.failed,
            s.folder.display()
        );
        if let Some(w) = &s.warning {
            println!("warning: {w}");
        }
    }
    Ok(if s.failed > 0 || s.warning.is_some() { 1 } else { 0 })
}

/// One line of standard input, without its line end: a secret the shell never sees.
fn secret_from_stdin(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .with_context(|| format!("reading the {what} from standard input"))?;
    let secret = line.trim_end_matches(['\r', '\n']).to_string();
    if secret.is_empty() {
        anyhow::bail!("no {what} on standard input");
    }
    Ok(secret)
}

pub fn pacs(args: &PacsArgs) -> anyhow::Result<i32> {
    let path = match &args.config {
        Some(p) => p.clone(),
        None => nodes::config_path()?,
    };
    let mut config = Config::load(&path)?;
    let node = |name: &str| -> anyhow::Result<Node> { Ok(config.node(name)?.clone()) };
    let endpoint = |name: &str| -> anyhow::Result<Endpoint> { Ok(config.endpoint(name)?) };
    let on = |n: &Node| format!("node {} ({})", n.name, n.address());
    match &args.action {
        PacsAction::Nodes => {
            if config.nodes.is_empty() && config.web.is_empty() {
                println!("no nodes configured in {}", path.display());
            }
            for n in &config.nodes {
                println!(
                    "{}\t{}\tas {}\ttimeout {} s",
                    n.name,
                    n.address(),
                    n.our_ae,
                    n.timeout_s
                );
            }
            for w in &config.web {
                let ca = w.ca_file.as_ref().map(|c| format!("\tCA {}", c.display())).unwrap_or_default();
                println!(
                    "{}\t{}\tDICOMweb, {}{ca}\ttimeout {} s",
                    w.name,
                    w.address(),
                    w.auth.describe(),
                    w.timeout_s
                );
            }
            Ok(0)
        }
        PacsAction::AddWeb {
            name,
            url,
            user,
            password_stdin: _,
            token_stdin,
            ca_file,
            timeout,
        } => {
            let auth = match (user, token_stdin) {
                (Some(user), _) => Auth::Basic {
                    user: user.clone(),
                    password: secret_from_stdin("password")?,
                },
                (None, true) => Auth::Bearer {
                    token: secret_from_stdin("token")?,
                },
                (None, false) => Auth::None,
            };
            let ca_file = match ca_file {
                Some(c) => Some(
                    std::fs::canonicalize(c).with_context(|| format!("the CA file {}", c.display()))?,
                ),
                None => None,
            };
            config.upsert_web(WebNode {
                name: name.clone(),
                url: url.clone(),
                auth,
                ca_file,
                timeout_s: *timeout,
            })?;
            config.save(&path)?;
            println!("saved DICOMweb node {name} in {}", path.display());
            Ok(0)
        }
        PacsAction::Add {
            name,
            ae,
            host,
            port,
            our_ae,
            timeout,
            max_dataset_mb,
        } => {
            config.upsert(Node {
                name: name.clone(),
                ae_title: ae.clone(),
                host: host.clone(),
                port: *port,
                our_ae: our_ae.clone(),
                timeout_s: *timeout,
                max_dataset_mb: *max_dataset_mb,
            })?;
            config.save(&path)?;
            println!("saved node {name} in {}", path.display());
            Ok(0)
        }
        PacsAction::Remove { name } => {
            config.remove(name)?;
            config.save(&path)?;
            println!("removed node {name}");
            Ok(0)
        }
        PacsAction::Echo { node: name } => {
            let e = endpoint(name)?;
            let rtt = e.echo().with_context(|| format!("{} to {}", e.verbs()[0], e.describe()))?;
            println!("{}: echo ok in {:.0} ms", e.describe(), rtt.as_secs_f64() * 1000.0);
            Ok(0)
        }
        PacsAction::Find {
            node: name,
            patient_name,
            patient_id,
            date,
            modality,
            accession,
            study,
            json,
        } => {
            let e = endpoint(name)?;
            let level = if study.is_some() {
                FindLevel::Series
            } else {
                FindLevel::Study
            };
            let query = Query {
                patient_name: patient_name.clone(),
                patient_id: patient_id.clone(),
                study_date: date.clone(),
                modality: modality.clone(),
                accession: accession.clone(),
                study_uid: study.clone(),
                series_uid: None,
            };
            let rows = e
                .find(level, &query)
                .with_context(|| format!("{} on {}", e.verbs()[1], e.describe()))?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(0);
            }
            let columns: &[&str] = match level {
                FindLevel::Study => &[
                    "PatientName",
                    "PatientID",
                    "StudyDate",
                    "ModalitiesInStudy",
                    "NumberOfStudyRelatedInstances",
                    "StudyDescription",
                    "StudyInstanceUID",
                ],
                FindLevel::Series => &[
                    "SeriesNumber",
                    "Modality",
                    "NumberOfSeriesRelatedInstances",
                    "SeriesDescription",
                    "SeriesInstanceUID",
                ],
            };
            println!("{}", columns.join("\t"));
            for r in &rows {
                let cells: Vec<&str> = columns.iter().map(|c| r.get(*c).map_or("", String::as_str)).collect();
                println!("{}", cells.join("\t"));
            }
            eprintln!("{} match(es)", rows.len());
            Ok(0)
        }
        PacsAction::Get {
            node: name,
            study,
            series,
            out,
            json,
        } => {
            let e = endpoint(name)?;
            let cache = match out {
                Some(o) => o.clone(),
                None => default_cache()?,
            };
            // Ctrl-C asks the node to stop (C-CANCEL); what arrived stays for a later resume.
            let cancel = std::sync::Arc::new(AtomicBool::new(false));
            let flag = cancel.clone();
            let _ = ctrlc::set_handler(move || {
                if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    std::process::exit(crate::exit::INTERRUPTED);
                }
            });
            let (bar, progress) = retrieve_bar();
            let result = e.get(study, series.as_deref(), &cache, &progress, &cancel);
            bar.done();
            let s = result.with_context(|| resume_hint(e.verbs()[2], &e.describe(), &cache, study))?;
            report(&s, *json)
        }
        PacsAction::Move {
            node: name,
            study,
            series,
            listen,
            out,
            json,
        } => {
            let n = node(name)?;
            let cache = match out {
                Some(o) => o.clone(),
                None => default_cache()?,
            };
            let (bar, progress) = retrieve_bar();
            let result = pacs::move_to_focal(&n, study, series.as_deref(), &cache, listen, &progress);
            bar.done();
            let s = result.with_context(|| resume_hint("C-MOVE", &on(&n), &cache, study))?;
            report(&s, *json)
        }
        PacsAction::Store { node: name, paths } => {
            let e = endpoint(name)?;
            let files = dicom_files(paths)?;
            if files.is_empty() {
                anyhow::bail!(
                    "no DICOM files under {}",
                    paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            let s = e
                .store(&files)
                .with_context(|| format!("{} to {}", e.verbs()[3], e.describe()))?;
            println!(
                "{} of {} file(s) stored on {} in {:.2} s",
                s.stored,
                files.len(),
                e.describe(),
                s.seconds
            );
            for (f, why) in &s.failed {
                println!("not stored: {}: {why}", f.display());
            }
            Ok(if s.failed.is_empty() { 0 } else { 1 })
        }
    }
}
