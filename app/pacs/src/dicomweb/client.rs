//! The DICOMweb client: requests to one configured server and what it answers.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::{find_bytes, json_text, multipart_parts, qido_rows, tag_key};
use crate::nodes::WebNode;
use crate::query::{FindLevel, GetSummary, Query, StoreSummary, return_keys};
use crate::receive::{Tally, created_study_folder};
use crate::PacsError;

mod http;
use http::{Client, DICOM_JSON, path_segment};

/// What Focal asks WADO-RS for: each instance as a Part 10 file in the encoding the server
/// holds it in (`*`), else (servers that cannot) in the server's default.
const WADO_ANY_SYNTAX: &str = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";
const WADO_DEFAULT: &str = "multipart/related; type=\"application/dicom\"";
/// The largest single instance Focal takes in (a long multi-frame series fits).
const MAX_INSTANCE_BYTES: u64 = 4 << 30;
/// STOW-RS requests are split so that none carries more than this.
const STOW_CHUNK_BYTES: usize = 64 << 20;
/// WADO-RS requests in flight at once during a retrieve.
const WADO_WORKERS: usize = 4;
/// QIDO page size when listing a study's instances.
const QIDO_PAGE: usize = 1000;

/// Is the server there, and does it let Focal in? (QIDO-RS for one study.)
pub fn echo(node: &WebNode) -> Result<Duration, PacsError> {
    let client = Client::new(node)?;
    let started = Instant::now();
    let resp = client.get("/studies", DICOM_JSON, &[("limit", "1".into())])?;
    client.json(resp, "to a study query")?;
    Ok(started.elapsed())
}

/// QIDO-RS at study level, or the series of `query.study_uid` at series level; the same rows,
/// keyed by attribute keyword, as the C-FIND of a DIMSE node gives.
pub fn find(node: &WebNode, level: FindLevel, query: &Query) -> Result<Vec<BTreeMap<String, String>>, PacsError> {
    let client = Client::new(node)?;
    let path = match (level, &query.study_uid) {
        (FindLevel::Series, Some(study)) => format!("/studies/{}/series", path_segment(study)?),
        (FindLevel::Series, None) => "/series".to_string(),
        (FindLevel::Study, _) => "/studies".to_string(),
    };
    let modality_key = match level {
        FindLevel::Study => "ModalitiesInStudy",
        FindLevel::Series => "Modality",
    };
    let mut params: Vec<(&str, String)> = Vec::new();
    let keys = [
        ("PatientName", &query.patient_name),
        ("PatientID", &query.patient_id),
        ("StudyDate", &query.study_date),
        (modality_key, &query.modality),
        ("AccessionNumber", &query.accession),
        ("SeriesInstanceUID", &query.series_uid),
    ];
    for (k, v) in keys {
        if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            params.push((k, v.to_string()));
        }
    }
    if level == FindLevel::Study
        && let Some(uid) = &query.study_uid
    {
        params.push(("StudyInstanceUID", uid.clone()));
    }
    let returned = return_keys(level);
    for (_, tag, _) in &returned {
        params.push(("includefield", tag_key(*tag)));
    }
    let resp = client.get(&path, DICOM_JSON, &params)?;
    let items = client.json(resp, "to the query")?;
    Ok(qido_rows(&items, level))
}

/// (series UID, instance UID) of each instance of a study (or of one series of it).
fn list_instances(client: &Client, study: &str, series: Option<&str>) -> Result<Vec<(String, String)>, PacsError> {
    let path = match series {
        Some(s) => format!("/studies/{}/series/{}/instances", path_segment(study)?, path_segment(s)?),
        None => format!("/studies/{}/instances", path_segment(study)?),
    };
    let mut out: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // Page until a page brings nothing new: servers cap answers at their own limit (which may
    // be below ours), and some ignore `offset` and answer the same page again.
    loop {
        let params = [
            ("includefield", tag_key(dicom_dictionary_std::tags::SERIES_INSTANCE_UID)),
            ("limit", QIDO_PAGE.to_string()),
            ("offset", out.len().to_string()),
        ];
        let resp = client.get(&path, DICOM_JSON, &params)?;
        let page = client.json(resp, "listing the study's instances")?;
        let before = out.len();
        for obj in page {
            let series_uid = json_text(&obj, dicom_dictionary_std::tags::SERIES_INSTANCE_UID)
                .or_else(|| series.map(str::to_string));
            let instance = json_text(&obj, dicom_dictionary_std::tags::SOP_INSTANCE_UID);
            match (series_uid, instance) {
                (Some(s), Some(i)) => {
                    if seen.insert(i.clone()) {
                        out.push((s, i));
                    }
                }
                _ => {
                    return Err(PacsError::Protocol(
                        "an instance listed without its series or SOP instance UID".into(),
                    ));
                }
            }
        }
        if out.len() == before {
            break;
        }
    }
    out.sort();
    Ok(out)
}

/// The boundary parameter of a multipart content type.
fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Fetches one instance with WADO-RS: its Part 10 bytes.
fn fetch_instance(client: &Client, study: &str, series: &str, instance: &str, any_syntax: &mut bool) -> Result<Vec<u8>, PacsError> {
    let path = format!(
        "/studies/{}/series/{}/instances/{}",
        path_segment(study)?,
        path_segment(series)?,
        path_segment(instance)?
    );
    let mut resp = client.get(&path, if *any_syntax { WADO_ANY_SYNTAX } else { WADO_DEFAULT }, &[])?;
    if *any_syntax && matches!(resp.status().as_u16(), 400 | 406) {
        // The server cannot send its own encoding as asked; take its default from now on.
        *any_syntax = false;
        resp = client.get(&path, WADO_DEFAULT, &[])?;
    }
    let mut resp = client.expect_ok(resp, "retrieving an instance")?;
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_INSTANCE_BYTES)
        .read_to_vec()
        .map_err(|e| client.transport(e))?;
    let data = if content_type.to_ascii_lowercase().starts_with("multipart/") {
        let b = boundary(&content_type)
            .ok_or_else(|| PacsError::Protocol("a multipart answer without a boundary".into()))?;
        let parts = multipart_parts(&body, &b).map_err(|e| PacsError::Disconnected(e.to_string()))?;
        match parts.as_slice() {
            [one] => one.to_vec(),
            _ => {
                return Err(PacsError::Protocol(format!(
                    "{} parts for one instance",
                    parts.len()
                )));
            }
        }
    } else {
        body
    };
    if data.len() < 132 || &data[128..132] != b"DICM" {
        return Err(PacsError::Protocol("the server sent an instance that is not a DICOM file".into()));
    }
    Ok(data)
}

/// WADO-RS of a study (or one series) into `study_folder(cache, study)`, one instance per
/// request: each file is written whole (temporary name, then rename) as it arrives, so an
/// interrupted retrieve keeps what arrived and a second one fetches only what is missing.
pub fn get(
    node: &WebNode,
    study_uid: &str,
    series_uid: Option<&str>,
    cache: &Path,
    progress: &dyn Fn(usize, Option<usize>),
    cancel: &AtomicBool,
) -> Result<GetSummary, PacsError> {
    let started = Instant::now();
    let client = Client::new(node)?;
    let folder = created_study_folder(cache, study_uid)?;
    let instances = list_instances(&client, study_uid, series_uid)?;
    if instances.is_empty() {
        return Err(PacsError::Failed("no instances of that study on the server".into()));
    }
    let total = Some(instances.len());
    let mut tally = Tally::default();
    let mut problems: Vec<String> = Vec::new();
    let mut fatal: Option<PacsError> = None;
    // A few requests in flight hide each one's round trip; every file is still written whole,
    // by the worker that fetched it, and counted here.
    let any_syntax = AtomicBool::new(true);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel::<Result<Option<u64>, PacsError>>();
    std::thread::scope(|scope| {
        for _ in 0..WADO_WORKERS.min(instances.len()) {
            let tx = tx.clone();
            let (client, folder, instances) = (&client, &folder, &instances);
            let (any_syntax, next, stop) = (&any_syntax, &next, &stop);
            scope.spawn(move || {
                loop {
                    if stop.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed) {
                        return;
                    }
                    let Some((series, instance)) = instances.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    let path = folder.join(format!("{}.dcm", crate::uid::key(instance)));
                    let outcome = if path.exists() {
                        Ok(None)
                    } else {
                        let mut syntax = any_syntax.load(Ordering::Relaxed);
                        let fetched = fetch_instance(client, study_uid, series, instance, &mut syntax);
                        if !syntax {
                            any_syntax.store(false, Ordering::Relaxed);
                        }
                        fetched.and_then(|bytes| {
                            crate::outdir::write_atomic(&path, &bytes)
                                .map(|()| Some(bytes.len() as u64))
                                .map_err(|e| PacsError::Io(format!("cannot write {}: {e}", path.display())))
                        })
                    };
                    if tx.send(outcome).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        for outcome in rx {
            match outcome {
                Ok(Some(bytes)) => {
                    tally.received += 1;
                    tally.bytes += bytes;
                }
                Ok(None) => tally.already_had += 1,
                // The server said no to this one instance: note it, go on with the rest.
                Err(PacsError::Failed(why)) | Err(PacsError::Protocol(why)) => {
                    tracing::warn!("a retrieved instance was not kept: {why}");
                    tally.failed += 1;
                    if problems.is_empty() {
                        problems.push(why);
                    }
                }
                // The connection or the credentials failed: stop; what arrived stays.
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    fatal.get_or_insert(e);
                }
            }
            progress(tally.received + tally.already_had + tally.failed, total);
        }
    });
    if let Some(e) = fatal {
        return Err(e);
    }
    if tally.received + tally.already_had + tally.failed < instances.len() {
        // Only a cancel stops the workers without an error.
        return Err(PacsError::Cancelled);
    }
    let warning = (tally.failed > 0).then(|| {
        format!(
            "{} instance(s) could not be retrieved ({})",
            tally.failed,
            problems.first().map_or("", String::as_str)
        )
    });
    Ok(GetSummary::from_tally(folder, tally, warning, started))
}

/// STOW-RS of DICOM files, in requests of at most `STOW_CHUNK_BYTES`, each file as it is on
/// disk (Part 10, its own encoding).
pub fn store(node: &WebNode, files: &[PathBuf]) -> Result<StoreSummary, PacsError> {
    let started = Instant::now();
    let client = Client::new(node)?;
    let mut summary = StoreSummary::default();
    let mut chunk: Vec<(PathBuf, String, Vec<u8>)> = Vec::new();
    let mut chunk_bytes = 0usize;
    for f in files {
        let read = std::fs::read(f).map_err(|e| e.to_string()).and_then(|bytes| {
            if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
                return Err("not a DICOM Part 10 file".to_string());
            }
            let obj = dicom_object::OpenFileOptions::new()
                .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
                .open_file(f)
                .map_err(|e| format!("not a DICOM file: {e}"))?;
            let uid = obj.meta().media_storage_sop_instance_uid().trim_end_matches('\0').to_string();
            Ok((uid, bytes))
        });
        match read {
            Ok((uid, bytes)) => {
                if !chunk.is_empty() && chunk_bytes + bytes.len() > STOW_CHUNK_BYTES {
                    send_chunk(&client, std::mem::take(&mut chunk), &mut summary)?;
                    chunk_bytes = 0;
                }
                chunk_bytes += bytes.len();
                chunk.push((f.clone(), uid, bytes));
            }
            Err(why) => summary.failed.push((f.clone(), why)),
        }
    }
    if !chunk.is_empty() {
        send_chunk(&client, chunk, &mut summary)?;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// A boundary that none of the parts contains.
fn stow_boundary(parts: &[(PathBuf, String, Vec<u8>)]) -> String {
    let mut n = 0u32;
    loop {
        let b = format!("focal-stow-{}-{n}", std::process::id());
        if parts.iter().all(|(_, _, bytes)| find_bytes(bytes, b.as_bytes(), 0).is_none()) {
            return b;
        }
        n += 1;
    }
}

fn send_chunk(client: &Client, chunk: Vec<(PathBuf, String, Vec<u8>)>, summary: &mut StoreSummary) -> Result<(), PacsError> {
    let b = stow_boundary(&chunk);
    let mut body = Vec::with_capacity(chunk.iter().map(|(_, _, d)| d.len() + 128).sum());
    for (_, _, bytes) in &chunk {
        body.extend_from_slice(format!("--{b}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    let content_type = format!("multipart/related; type=\"application/dicom\"; boundary={b}");
    let resp = client.post("/studies", &content_type, &body)?;
    // 409: the server took none; its answer still says why, per instance.
    let status = resp.status().as_u16();
    let items = if status == 409 {
        let mut resp = resp;
        let bytes = resp.body_mut().with_config().limit(16 << 20).read_to_vec().unwrap_or_default();
        serde_json::from_slice::<Json>(&bytes).map(|j| vec![j]).unwrap_or_default()
    } else {
        client.json(resp, "to the store")?
    };
    let mut stored = std::collections::HashSet::new();
    let mut failed = HashMap::new();
    for obj in &items {
        for (seq, ok) in [("00081199", true), ("00081198", false)] {
            let Some(entries) = obj.get(seq).and_then(|s| s.get("Value")).and_then(Json::as_array) else {
                continue;
            };
            for e in entries {
                let Some(uid) = json_text(e, dicom_dictionary_std::tags::REFERENCED_SOP_INSTANCE_UID) else {
                    continue;
                };
                if ok {
                    stored.insert(uid);
                } else {
                    let reason = json_text(e, dicom_dictionary_std::tags::FAILURE_REASON).unwrap_or_default();
                    failed.insert(uid, reason);
                }
            }
        }
    }
    for (path, uid, _) in &chunk {
        if stored.contains(uid) {
            summary.stored += 1;
        } else if let Some(reason) = failed.get(uid) {
            let code = reason.parse::<u16>().ok();
            let why = code.map_or_else(|| "refused by the server".to_string(), crate::dimse::status_text);
            summary.failed.push((path.clone(), why));
        } else if (200..300).contains(&status) && items.is_empty() {
            // A server that answers success without a per-instance list took them all.
            summary.stored += 1;
        } else {
            summary.failed.push((path.clone(), format!("not acknowledged by the server (HTTP {status})")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::Auth;
    use base64::Engine;

    #[test]
    fn multipart_boundaries_are_read_from_the_content_type() {
        assert_eq!(boundary("multipart/related; type=\"application/dicom\"; boundary=\"a b\""), Some("a b".into()));
        assert_eq!(boundary("multipart/related;boundary=xyz"), Some("xyz".into()));
    }

    #[test]
    fn uids_are_the_only_path_segments() {
        assert!(path_segment("1.2.840.10008.1.1").is_ok());
        assert!(path_segment("../../etc").is_err());
        assert!(path_segment("1.2/3").is_err());
    }

    /// A bearer token and a basic password go to the server in the Authorization header, and
    /// only there: a one-shot HTTP server on loopback records the request ureq really sends.
    #[test]
    fn credentials_travel_in_the_authorization_header_only() {
        use std::io::{BufRead, BufReader, Write};
        for (auth, expected) in [
            (Auth::Bearer { token: "tok-42".into() }, "Bearer tok-42".to_string()),
            (
                Auth::Basic {
                    user: "reader".into(),
                    password: "pw:9".into(),
                },
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("reader:pw:9")),
            ),
        ] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = std::thread::spawn(move || {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut lines = Vec::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    lines.push(line.trim_end().to_string());
                }
                let mut out = stream;
                out.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
                lines
            });
            let node = WebNode {
                name: "t".into(),
                url: format!("http://127.0.0.1:{port}/dicom-web"),
                auth,
                ca_file: None,
                timeout_s: 5,
            };
            let err = echo(&node).unwrap_err();
            assert!(matches!(err, PacsError::Unauthorized(_)), "{err}");
            let lines = server.join().unwrap();
            assert!(lines[0].starts_with("GET /dicom-web/studies?limit=1 HTTP/1.1"), "{lines:?}");
            let auth_lines: Vec<&String> = lines.iter().filter(|l| l.to_ascii_lowercase().starts_with("authorization:")).collect();
            assert_eq!(auth_lines.len(), 1, "{lines:?}");
            assert_eq!(auth_lines[0]["authorization:".len()..].trim(), expected);
            assert!(!err.to_string().contains("tok-42") && !err.to_string().contains("pw:9"));
        }
    }
}
