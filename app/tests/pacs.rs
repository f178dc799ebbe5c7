//! `focal pacs` against a real Orthanc (Debian's package) started by
//! `app/tests/reference/pacs_scenario.py` inside a private network namespace, so that it can
//! be reached on 127.0.0.1 only, and stopped at the end. The sample study is uploaded through
//! Orthanc's REST API; Focal then echoes, finds (patient, date, modality, series), retrieves
//! with C-GET (also through a link that drops mid-transfer, then resumes) and C-MOVE (to
//! Focal's own storage SCP), runs `focal batch` on a CSV naming the node and study, analyses what
//! arrived, stores SEG, Parametric Map and Encapsulated PDF back, and finds them under the
//! same study. A wrong AE title and a closed port must fail clearly and quickly. A study of
//! 1,068 instances is retrieved within bounded memory.

mod common;

use common::{json_out, step, text};

/// Seconds within which a refused or unreachable node must be reported (the node timeout is
/// 10 s; both failures are immediate on loopback, so this only catches a hang).
const FAIL_BOUND_S: f64 = 10.0;

#[test]
fn query_retrieve_analyze_and_store_round_trip_against_orthanc_on_loopback() {
    let report = common::run_orthanc_scenario("app/tests/reference/pacs_scenario.py", &[]);
    assert_eq!(report["uploaded"], 89);
    let study = text(&report["study_uid"]);

    // Only loopback: the namespace has `lo` alone, Orthanc is gone at the end, and the node
    // list is private.
    assert_eq!(report["interfaces"], serde_json::json!(["lo"]));
    assert!(
        report["after_stop"].as_array().is_some_and(Vec::is_empty),
        "{}",
        report["after_stop"]
    );
    assert_eq!(report["config_mode"], "0o600");

    // Echo, and find by patient, date range and modality, then the study's series.
    assert_eq!(step(&report, "echo")["code"], 0, "{}", step(&report, "echo"));
    common::assert_finds_the_sample(&report, &study);

    // A wrong AE title and a closed port: clear errors, quickly.
    let wrong = step(&report, "echo_wrong_ae");
    assert_ne!(wrong["code"], 0);
    assert!(text(&wrong["stderr"]).contains("refused the association"), "{wrong}");
    assert!(text(&wrong["stderr"]).contains("NOT_ORTHANC@127.0.0.1"), "{wrong}");
    let closed = step(&report, "echo_closed");
    assert_ne!(closed["code"], 0);
    assert!(text(&closed["stderr"]).contains("cannot connect"), "{closed}");
    for s in [wrong, closed] {
        assert!(s["seconds"].as_f64().unwrap_or(f64::MAX) < FAIL_BOUND_S, "{s}");
    }

    // C-GET of the whole study, then the study opens like any folder.
    let got = json_out(&report, "get");
    assert_eq!(got["received"], 89, "{got}");
    assert_eq!(got["failed"], 0);
    let info = json_out(&report, "info");
    let opened = &info["patients"][0]["studies"][0];
    assert_eq!(opened["uid"], study.as_str());

    // A link that drops mid-transfer keeps only whole files, and a second retrieve completes.
    let dropped = step(&report, "get_dropped");
    assert_ne!(dropped["code"], 0, "{dropped}");
    assert!(
        text(&dropped["stderr"]).contains("run the same command again to resume"),
        "{dropped}"
    );
    common::assert_drop_kept_whole_files_and_resumed(&report);

    // C-MOVE: Orthanc sends the study to Focal's storage SCP, which is gone afterwards.
    let moved = json_out(&report, "move");
    assert_eq!(moved["received"], 89, "{moved}");
    assert_eq!(moved["failed"], 0, "{moved}");
    let after_move = report["listening_after_move"].as_array().expect("sockets");
    assert!(
        !after_move.iter().any(|a| text(a).ends_with(":11112")),
        "the storage SCP still listens: {after_move:?}"
    );

    // focal batch over a CSV of node and study UID: retrieves, analyses; a rerun does neither.
    let first = step(&report, "batch_first");
    assert_eq!(first["code"], 0, "{first}");
    assert!(
        text(&first["stderr"]).contains("retrieved 89 instance(s) from node orthanc"),
        "{first}"
    );
    let table = text(&report["batch_first_table"]);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows[1].starts_with("pacs:orthanc/study:"), "{table}");
    assert!(rows[1].contains(",ok,"), "{table}");
    assert!(!table.contains(&study), "the table holds the study UID: {table}");
    let second = step(&report, "batch_second");
    assert_eq!(second["code"], 0, "{second}");
    assert!(!text(&second["stderr"]).contains("retrieved"), "{second}");
    assert!(
        text(&report["batch_second_table"]).contains(",cached,"),
        "{}",
        report["batch_second_table"]
    );

    // Analyse what arrived, export (identified, to go back to its study) and store.
    common::assert_results_joined_study(&report, "store");
    assert_eq!(
        report["orthanc_series_after_store"],
        serde_json::json!(["DOC", "MR", "OT", "SEG"])
    );

    // Focal's retrieve and dcmtk's getscu on the same study (for the record, not a bar).
    eprintln!("retrieve seconds: {}", report["retrieve_seconds"]);

    // 1,068 instances in one study: all arrive, and Focal's peak memory stays far below the
    // study's 140 MB (each instance is written as it arrives, none is held).
    let load = &report["load"];
    eprintln!("1,068-instance retrieve: {load}");
    assert_eq!(load["code"], 0, "{load}");
    assert_eq!(load["uploaded"], 1068, "{load}");
    assert_eq!(load["received"], 1068, "{load}");
    assert_eq!(load["failed"], 0, "{load}");
    let peak_mib = load["peak_rss_kb"].as_f64().unwrap_or(f64::MAX) / 1024.0;
    assert!(peak_mib < 100.0, "peak RSS {peak_mib:.0} MiB for a 1,068-instance retrieve: {load}");
}
