//! The attributes of one file as rows of text, for the tag inspector.

use std::path::Path;

use dicom_core::DataDictionary;
use dicom_core::header::Header;
use dicom_core::value::Value;
use dicom_dictionary_std::StandardDataDictionary;

use super::error::{Result, StudyError};
use super::open::{Extent, open_object};

/// One attribute: tag, keyword, VR and its value shortened for display. Sequences list their
/// items' attributes indented below them (`depth`).
#[derive(Debug, Clone, PartialEq)]
pub struct TagRow {
    pub tag: String,
    pub keyword: String,
    pub vr: String,
    pub value: String,
    pub depth: usize,
}

/// Longest value text shown; longer values end with "…".
const MAX_VALUE_CHARS: usize = 160;
/// Deepest sequence nesting listed.
const MAX_DEPTH: usize = 4;

/// Reads the file's meta group and data set (not its pixel data) as rows.
pub fn list_tags(path: &Path) -> Result<Vec<TagRow>> {
    let obj = open_object(path, Extent::Header)?.ok_or_else(|| StudyError::Parse("not a DICOM file".into()))?;
    let mut rows = Vec::new();
    let meta = obj.meta();
    for (tag, keyword, value) in [
        ("(0002,0010)", "TransferSyntaxUID", meta.transfer_syntax()),
        (
            "(0002,0002)",
            "MediaStorageSOPClassUID",
            meta.media_storage_sop_class_uid(),
        ),
    ] {
        rows.push(TagRow {
            tag: tag.into(),
            keyword: keyword.into(),
            vr: "UI".into(),
            value: value.trim_end_matches('\0').to_string(),
            depth: 0,
        });
    }
    push_elements(obj.iter(), 0, &mut rows);
    Ok(rows)
}

fn push_elements<'a, I>(elements: I, depth: usize, rows: &mut Vec<TagRow>)
where
    I: Iterator<Item = &'a dicom_object::mem::InMemElement>,
{
    for e in elements {
        let tag = e.tag();
        let keyword = StandardDataDictionary
            .by_tag(tag)
            .map(|entry| entry.alias.to_string())
            .unwrap_or_else(|| {
                if tag.group() % 2 == 1 {
                    "(private)".into()
                } else {
                    "(unknown)".into()
                }
            });
        let value = match e.value() {
            Value::Primitive(p) => shorten(&p.to_str()),
            Value::Sequence(s) => format!("{} item(s)", s.items().len()),
            Value::PixelSequence(s) => format!("{} fragment(s)", s.fragments().len()),
        };
        rows.push(TagRow {
            tag: format!("({:04X},{:04X})", tag.group(), tag.element()),
            keyword,
            vr: e.vr().to_string().to_string(),
            value,
            depth,
        });
        if let (Value::Sequence(s), true) = (e.value(), depth < MAX_DEPTH) {
            for item in s.items() {
                push_elements(item.iter(), depth + 1, rows);
            }
        }
    }
}

fn shorten(text: &str) -> String {
    let text = text.trim_end_matches(['\0', ' ']);
    match text.char_indices().nth(MAX_VALUE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
