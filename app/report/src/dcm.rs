//! Small helpers over dicom-rs's object model for building export objects.

use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_object::InMemDicomObject;
use smallvec::SmallVec;

pub use crate::uid::{implementation_class_uid, uid_from_bytes};

/// UIDs made for one export: fresh, and the same output for the same input within the export.
pub struct UidSource {
    salt: Vec<u8>,
}

impl Default for UidSource {
    fn default() -> Self {
        UidSource::new()
    }
}

impl UidSource {
    pub fn new() -> UidSource {
        // Time, process and an address: unique enough per export without a random-number crate.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let local = 0u8;
        let salt = format!("{now}-{}-{:p}", std::process::id(), &local).into_bytes();
        UidSource { salt }
    }

    /// A new UID standing for `key` (an old UID, or a name like "seg-series").
    pub fn uid(&self, key: &str) -> String {
        let mut bytes = self.salt.clone();
        bytes.extend_from_slice(b"|");
        bytes.extend_from_slice(key.as_bytes());
        uid_from_bytes(&bytes)
    }
}

/// A decimal string of at most 16 characters (VR DS).
pub fn ds(v: f64) -> String {
    if !v.is_finite() {
        return "0".into();
    }
    for precision in (0..=10).rev() {
        let s = format!("{v:.precision$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        let s = if s == "-0" { "0".to_string() } else { s };
        if s.len() <= 16 {
            return s;
        }
    }
    format!("{v:.6e}")
}

/// A data set under construction.
#[derive(Debug, Clone)]
pub struct Ds(pub InMemDicomObject);

impl Default for Ds {
    fn default() -> Self {
        Ds::new()
    }
}

impl Ds {
    pub fn new() -> Ds {
        Ds(InMemDicomObject::new_empty())
    }

    pub fn put(&mut self, tag: Tag, vr: VR, value: PrimitiveValue) -> &mut Ds {
        self.0.put(DataElement::new(tag, vr, value));
        self
    }

    /// A text value; multiple values are joined with '\'.
    pub fn str(&mut self, tag: Tag, vr: VR, value: impl AsRef<str>) -> &mut Ds {
        self.put(tag, vr, PrimitiveValue::from(value.as_ref().to_string()))
    }

    pub fn empty(&mut self, tag: Tag, vr: VR) -> &mut Ds {
        self.put(tag, vr, PrimitiveValue::Empty)
    }

    pub fn decimals(&mut self, tag: Tag, values: &[f64]) -> &mut Ds {
        let text: Vec<String> = values.iter().map(|v| ds(*v)).collect();
        self.str(tag, VR::DS, text.join("\\"))
    }

    pub fn int(&mut self, tag: Tag, value: i64) -> &mut Ds {
        self.str(tag, VR::IS, value.to_string())
    }

    pub fn us(&mut self, tag: Tag, value: u16) -> &mut Ds {
        self.put(tag, VR::US, PrimitiveValue::U16(SmallVec::from_slice(&[value])))
    }

    pub fn ul(&mut self, tag: Tag, values: &[u32]) -> &mut Ds {
        self.put(tag, VR::UL, PrimitiveValue::U32(SmallVec::from_slice(values)))
    }

    pub fn fd(&mut self, tag: Tag, values: &[f64]) -> &mut Ds {
        self.put(tag, VR::FD, PrimitiveValue::F64(SmallVec::from_slice(values)))
    }

    pub fn at(&mut self, tag: Tag, value: Tag) -> &mut Ds {
        self.put(tag, VR::AT, PrimitiveValue::Tags(SmallVec::from_slice(&[value])))
    }

    pub fn seq(&mut self, tag: Tag, items: Vec<Ds>) -> &mut Ds {
        let items: Vec<InMemDicomObject> = items.into_iter().map(|d| d.0).collect();
        self.0.put(DataElement::new(
            tag,
            VR::SQ,
            Value::from(DataSetSequence::new(items, Length::UNDEFINED)),
        ));
        self
    }

    /// Copies an element from another data set when it is there.
    pub fn copy_from(&mut self, source: &InMemDicomObject, tag: Tag) -> &mut Ds {
        if let Ok(Some(e)) = source.element_opt(tag) {
            self.0.put(e.clone());
        }
        self
    }
}

/// A code sequence item (value, scheme, meaning).
pub fn code(value: &str, scheme: &str, meaning: &str) -> Ds {
    let mut d = Ds::new();
    d.str(dicom_dictionary_std::tags::CODE_VALUE, VR::SH, value)
        .str(dicom_dictionary_std::tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme)
        .str(dicom_dictionary_std::tags::CODE_MEANING, VR::LO, meaning);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_fit_sixteen_characters() {
        assert_eq!(ds(1.0), "1");
        assert_eq!(ds(-0.0000001), "-0.0000001");
        assert_eq!(ds(-1e-12), "0");
        assert_eq!(ds(0.5), "0.5");
        assert!(ds(-123.456_789_012_345_67).len() <= 16);
        assert!(ds(1.0e20).len() <= 16);
    }

    #[test]
    fn uids_are_valid_and_consistent_within_an_export() {
        let s = UidSource::new();
        let a = s.uid("1.2.3");
        assert_eq!(a, s.uid("1.2.3"));
        assert_ne!(a, s.uid("1.2.4"));
        assert!(a.len() <= 64 && a.starts_with("2.25.") && a[5..].chars().all(|c| c.is_ascii_digit()));
        assert_ne!(a, UidSource::new().uid("1.2.3"));
    }
}
