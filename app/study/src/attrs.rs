//! Reading attribute values robustly from a parsed data set.
//!
//! Real files store numbers in surprising ways: DS/IS text with stray spaces or NULs, and
//! rescale elements written with VR UN (dicom-rs would read those bytes as binary numbers and
//! silently produce garbage). Every numeric read here goes through the text form when the
//! element is text or UN, and through the binary form only for binary VRs.

use dicom_core::{Tag, VR};
use dicom_object::InMemDicomObject;

pub type Object = InMemDicomObject;

/// Explicit VR Big Endian: retired (so dicom-rs marks its constant deprecated), but real
/// archives still hold it. Both the file opener and the pixel decoder need to recognise it.
pub(crate) const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

/// Trimmed string value of an element, `None` when absent or empty.
pub fn string(obj: &Object, tag: Tag) -> Option<String> {
    let elem = obj.get(tag)?;
    let text = match elem.vr() {
        VR::UN => String::from_utf8_lossy(&elem.to_bytes().ok()?).into_owned(),
        _ => elem.to_str().ok()?.into_owned(),
    };
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0').to_string();
    (!text.is_empty()).then_some(text)
}

fn is_text_vr(vr: VR) -> bool {
    matches!(
        vr,
        VR::DS | VR::IS | VR::UN | VR::LO | VR::SH | VR::CS | VR::ST | VR::LT | VR::UT
    )
}

/// All numeric values of an element (multi-valued), `None` when absent or unparsable.
pub fn floats(obj: &Object, tag: Tag) -> Option<Vec<f64>> {
    let elem = obj.get(tag)?;
    if is_text_vr(elem.vr()) {
        let bytes = elem.to_bytes().ok()?;
        let text = String::from_utf8_lossy(&bytes);
        let values: Option<Vec<f64>> = text
            .split('\\')
            .map(|s| s.trim_matches(|c: char| c.is_whitespace() || c == '\0'))
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<f64>().ok().filter(|v| v.is_finite()))
            .collect();
        values.filter(|v| !v.is_empty())
    } else {
        let values = elem.value().primitive()?.to_multi_float64().ok()?;
        let finite = values.iter().all(|v| v.is_finite());
        (finite && !values.is_empty()).then_some(values)
    }
}

pub fn float(obj: &Object, tag: Tag) -> Option<f64> {
    floats(obj, tag).and_then(|v| v.first().copied())
}

/// Fixed-size numeric vector (e.g. a position or orientation), `None` if the count is wrong.
pub fn vector<const N: usize>(obj: &Object, tag: Tag) -> Option<[f64; N]> {
    let v = floats(obj, tag)?;
    v.get(..N)?.try_into().ok()
}

pub fn int(obj: &Object, tag: Tag) -> Option<i64> {
    float(obj, tag).map(|v| v.round() as i64)
}

/// An unsigned 16-bit element (US), read from binary or from text.
pub fn u16(obj: &Object, tag: Tag) -> Option<u16> {
    int(obj, tag).and_then(|v| u16::try_from(v).ok())
}

/// Items of a sequence element, empty when absent or not a sequence.
pub fn items(obj: &Object, tag: Tag) -> &[Object] {
    obj.get(tag).and_then(|e| e.items()).unwrap_or(&[])
}

/// The first item of a sequence.
pub fn item(obj: &Object, tag: Tag) -> Option<&Object> {
    items(obj, tag).first()
}

/// Raw bytes of an element's value.
pub fn bytes(obj: &Object, tag: Tag) -> Option<Vec<u8>> {
    obj.get(tag)?.to_bytes().ok().map(|b| b.into_owned())
}
