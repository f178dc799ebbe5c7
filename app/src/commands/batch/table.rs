//! The batch's results table (results.csv): one row per series, a volume column per label.

use super::Row;

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or(String::new(), |v| v.to_string())
}

/// The table: a header naming each label's volume column, then one line per row.
pub fn table(label_names: &[String], rows: &[Row]) -> std::io::Result<String> {
    let mut head: Vec<String> = ["input", "study", "series", "modality", "slices", "status", "error"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    head.extend(
        label_names
            .iter()
            .map(|n| format!("{}_ml", n.to_lowercase().replace([' ', '+', '/'], "_"))),
    );
    head.extend(
        [
            "mean_confidence",
            "faithfulness_score",
            "faithfulness_passed",
            "key_regions",
            "key_regions_ml",
            "warnings",
            "provider",
            "model_sha256",
            "content_sha256",
            "seconds_load",
            "seconds_analysis",
            "folder",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    // Fields are quoted where they hold a separator, a quote or a line break (RFC 4180).
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut write = |fields: &[String]| out.write_record(fields).map_err(std::io::Error::other);
    write(&head)?;
    for r in rows {
        let mut f = vec![
            r.input.clone(),
            r.study.clone(),
            r.series.clone(),
            r.modality.clone(),
            r.slices.to_string(),
            r.status.clone(),
            r.error.clone(),
        ];
        for i in 0..label_names.len() {
            f.push(r.volumes_ml.get(i).map_or(String::new(), |v| format!("{v:.3}")));
        }
        f.extend([
            opt(r.mean_confidence.map(|c| format!("{c:.4}"))),
            opt(r.faithfulness_score.map(|c| format!("{c:.3}"))),
            opt(r.faithfulness_passed),
            opt(r.key_regions),
            opt(r.key_regions_ml.map(|v| format!("{v:.3}"))),
            r.warnings.clone(),
            r.provider.clone(),
            r.model_sha256.clone(),
            r.content_sha256.clone(),
            format!("{:.3}", r.seconds_load),
            format!("{:.3}", r.seconds_analysis),
            r.folder.clone(),
        ]);
        write(&f)?;
    }
    let bytes = out.into_inner().map_err(|e| std::io::Error::other(e.to_string()))?;
    String::from_utf8(bytes).map_err(std::io::Error::other)
}
