//! DICOMweb against a configured server: QIDO-RS (find), WADO-RS (retrieve, one instance per
//! request so that progress, cancel and resume work as with C-GET) and STOW-RS (store), over
//! ureq with rustls (`client`). This module reads the answers (DICOM JSON, multipart bodies)
//! without I/O, so the fuzz targets need no network code.
//!
//! The client follows no redirect, uses no proxy from the environment and trusts the CA file
//! the node names (else the Mozilla roots built into Focal): it talks to the configured URL
//! and nothing else. Credentials go into the `Authorization` header only; no message, log line
//! or `Debug` output holds them.

use std::collections::BTreeMap;

use dicom_core::Tag;
use serde_json::Value as Json;

use super::query::{FindLevel, return_keys};

#[cfg(feature = "network")]
mod client;
#[cfg(feature = "network")]
pub use client::{echo, find, get, store};

/// The objects of a DICOM JSON answer (an array, or one object; nothing for a blank body);
/// None when it is not JSON of that shape. Fuzzed (fuzz/fuzz_targets/dicomweb_answers.rs).
pub fn dicom_json(bytes: &[u8]) -> Option<Vec<Json>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Some(Vec::new());
    }
    match serde_json::from_slice::<Json>(bytes) {
        Ok(Json::Array(items)) => Some(items),
        Ok(obj @ Json::Object(_)) => Some(vec![obj]),
        Ok(_) | Err(_) => None,
    }
}

/// The rows of a QIDO-RS answer at `level`: each object's return keys as text, keyed by
/// keyword (what C-FIND's rows hold).
pub fn qido_rows(items: &[Json], level: FindLevel) -> Vec<BTreeMap<String, String>> {
    let returned = return_keys(level);
    items
        .iter()
        .map(|obj| {
            returned
                .iter()
                .filter_map(|(keyword, tag, _)| json_text(obj, *tag).map(|v| (keyword.to_string(), v)))
                .collect()
        })
        .collect()
}

/// `gggg eeee` as DICOM JSON writes a tag.
pub(crate) fn tag_key(tag: Tag) -> String {
    format!("{:04X}{:04X}", tag.group(), tag.element())
}

/// One attribute of a DICOM JSON object as text: values joined by `\`, person names by their
/// alphabetic form; None when the attribute is absent or empty.
pub(crate) fn json_text(obj: &Json, tag: Tag) -> Option<String> {
    let values = obj.get(tag_key(tag))?.get("Value")?.as_array()?;
    let parts: Vec<String> = values
        .iter()
        .map(|v| match v {
            Json::String(s) => s.clone(),
            Json::Number(n) => n.to_string(),
            Json::Object(o) => o
                .get("Alphabetic")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string(),
            _ => String::new(),
        })
        .collect();
    let text = parts.join("\\");
    (!text.is_empty()).then_some(text)
}

/// Finds `needle` in `hay` from `from`.
pub(crate) fn find_bytes(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| hay[i..].starts_with(needle))
}

/// The bodies of the parts of a `multipart/related` message. Fuzzed
/// (fuzz/fuzz_targets/dicomweb_answers.rs).
pub fn multipart_parts<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<&'a [u8]>, String> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut at = find_bytes(body, delimiter, 0).ok_or("no multipart boundary in the answer")?;
    let mut parts = Vec::new();
    loop {
        let after = at + delimiter.len();
        if body[after..].starts_with(b"--") {
            return Ok(parts);
        }
        let headers_end = find_bytes(body, b"\r\n\r\n", after).ok_or("a multipart part without headers")?;
        let start = headers_end + 4;
        let mut end_marker = b"\r\n".to_vec();
        end_marker.extend_from_slice(delimiter);
        let end = find_bytes(body, &end_marker, start).ok_or("a multipart part that does not end (cut off?)")?;
        parts.push(&body[start..end]);
        at = end + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_bodies_are_split_at_their_boundary() {
        let body = b"preamble\r\n--b1\r\nContent-Type: application/dicom\r\n\r\nAB\r\n--b1\r\n\r\n--b1x\r\n--b1--\r\n";
        let parts = multipart_parts(body, "b1").unwrap();
        assert_eq!(parts, vec![&b"AB"[..], &b"--b1x"[..]]);
        assert!(multipart_parts(b"--b1\r\nX: y\r\n\r\ncut off", "b1").is_err());
    }

    #[test]
    fn dicom_json_values_read_as_c_find_text() {
        let obj: Json = serde_json::json!({
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "DOE^JANE"}]},
            "00080061": {"vr": "CS", "Value": ["MR", "SEG"]},
            "00201208": {"vr": "IS", "Value": [89]},
            "00081030": {"vr": "LO"}
        });
        use dicom_dictionary_std::tags;
        assert_eq!(json_text(&obj, tags::PATIENT_NAME).as_deref(), Some("DOE^JANE"));
        assert_eq!(json_text(&obj, tags::MODALITIES_IN_STUDY).as_deref(), Some("MR\\SEG"));
        assert_eq!(json_text(&obj, tags::NUMBER_OF_STUDY_RELATED_INSTANCES).as_deref(), Some("89"));
        assert_eq!(json_text(&obj, tags::STUDY_DESCRIPTION), None);
    }
}
