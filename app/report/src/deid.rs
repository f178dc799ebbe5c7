//! De-identification after PS3.15 Annex E, Basic Application Level Confidentiality Profile:
//! identifying attributes emptied or removed, dates replaced, private attributes removed, and
//! every instance-specific UID remapped consistently across one export.

use dicom_core::header::Header;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::dcm::{Ds, UidSource, code};

/// Emptied (action Z: the attribute stays, type 2 in most IODs).
const EMPTY: &[Tag] = &[
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_SEX,
    tags::ACCESSION_NUMBER,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::STUDY_ID,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::CONTENT_CREATOR_NAME,
];

/// Removed (action X). The profile lists some retired attributes too.
#[allow(deprecated)]
const REMOVE: &[Tag] = &[
    tags::INSTITUTION_NAME,
    tags::INSTITUTION_ADDRESS,
    tags::INSTITUTIONAL_DEPARTMENT_NAME,
    tags::STATION_NAME,
    tags::PERFORMING_PHYSICIAN_NAME,
    tags::OPERATORS_NAME,
    tags::PHYSICIANS_OF_RECORD,
    tags::NAME_OF_PHYSICIANS_READING_STUDY,
    tags::REQUESTING_PHYSICIAN,
    tags::OTHER_PATIENT_I_DS,
    tags::OTHER_PATIENT_NAMES,
    tags::OTHER_PATIENT_I_DS_SEQUENCE,
    tags::PATIENT_BIRTH_TIME,
    tags::PATIENT_AGE,
    tags::PATIENT_SIZE,
    tags::PATIENT_WEIGHT,
    tags::PATIENT_ADDRESS,
    tags::PATIENT_TELEPHONE_NUMBERS,
    tags::PATIENT_MOTHER_BIRTH_NAME,
    tags::MEDICAL_RECORD_LOCATOR,
    tags::ETHNIC_GROUP,
    tags::OCCUPATION,
    tags::ADDITIONAL_PATIENT_HISTORY,
    tags::PATIENT_COMMENTS,
    tags::ISSUER_OF_PATIENT_ID,
    tags::MILITARY_RANK,
    tags::BRANCH_OF_SERVICE,
    tags::COUNTRY_OF_RESIDENCE,
    tags::REGION_OF_RESIDENCE,
    tags::STUDY_DESCRIPTION,
    tags::SERIES_DESCRIPTION,
    tags::DERIVATION_DESCRIPTION,
    tags::IMAGE_COMMENTS,
    tags::REFERENCED_PATIENT_SEQUENCE,
    tags::REQUEST_ATTRIBUTES_SEQUENCE,
    tags::PERFORMED_PROCEDURE_STEP_ID,
    tags::PERFORMED_PROCEDURE_STEP_DESCRIPTION,
    tags::PERFORMED_PROCEDURE_STEP_START_DATE,
    tags::PERFORMED_PROCEDURE_STEP_START_TIME,
    tags::ADMITTING_DIAGNOSES_DESCRIPTION,
    tags::PROTOCOL_NAME,
    tags::SERIES_DATE,
    tags::SERIES_TIME,
    tags::ACQUISITION_DATE,
    tags::ACQUISITION_TIME,
    tags::ACQUISITION_DATE_TIME,
    tags::INSTANCE_CREATION_DATE,
    tags::INSTANCE_CREATION_TIME,
    tags::PATIENT_IDENTITY_REMOVED,
    tags::DEIDENTIFICATION_METHOD,
];

/// Replaced with a dummy value (action D: type 1 in the IODs Focal writes).
const DUMMY_DATE: &[Tag] = &[tags::CONTENT_DATE];
const DUMMY_TIME: &[Tag] = &[tags::CONTENT_TIME];

/// UIDs defined by the standard (SOP classes, transfer syntaxes, coding schemes) stay.
fn is_standard_uid(uid: &str) -> bool {
    uid.starts_with("1.2.840.10008.")
}

/// De-identifies `obj` in place (its nested sequences included) and records how.
pub fn deidentify(obj: &mut InMemDicomObject, uids: &UidSource) {
    clean(obj, uids);
    let mut marks = Ds(std::mem::replace(obj, InMemDicomObject::new_empty()));
    marks
        .str(tags::PATIENT_IDENTITY_REMOVED, VR::CS, "YES")
        .str(
            tags::DEIDENTIFICATION_METHOD,
            VR::LO,
            "Focal: PS3.15 Basic Application Level Confidentiality Profile",
        )
        .seq(
            tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
            vec![code("113100", "DCM", "Basic Application Confidentiality Profile")],
        );
    *obj = marks.0;
}

fn clean(obj: &mut InMemDicomObject, uids: &UidSource) {
    obj.retain(|e| e.tag().group() % 2 == 0 && !REMOVE.contains(&e.tag()));
    let present: Vec<Tag> = obj.tags().collect();
    for tag in present {
        let Ok(Some(element)) = obj.element_opt(tag).map(|e| e.cloned()) else {
            continue;
        };
        let vr = element.vr();
        if EMPTY.contains(&tag) {
            obj.put(DataElement::new(tag, vr, PrimitiveValue::Empty));
        } else if DUMMY_DATE.contains(&tag) {
            obj.put(DataElement::new(tag, VR::DA, PrimitiveValue::from("19000101")));
        } else if DUMMY_TIME.contains(&tag) {
            obj.put(DataElement::new(tag, VR::TM, PrimitiveValue::from("000000")));
        } else if vr == VR::UI {
            if let Value::Primitive(p) = element.value() {
                let old = p.to_str();
                let old = old.trim_end_matches(['\0', ' ']);
                if !old.is_empty() && !is_standard_uid(old) {
                    obj.put(DataElement::new(tag, VR::UI, PrimitiveValue::from(uids.uid(old))));
                }
            }
        } else if let Value::Sequence(seq) = element.value() {
            let mut items: Vec<InMemDicomObject> = seq.items().to_vec();
            for item in &mut items {
                clean(item, uids);
            }
            let items = items.into_iter().map(Ds).collect();
            let mut d = Ds(std::mem::replace(obj, InMemDicomObject::new_empty()));
            d.seq(tag, items);
            *obj = d.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_go_and_uids_remap_consistently() {
        let uids = UidSource::new();
        let mut item = Ds::new();
        item.str(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, "1.2.3.4").str(
            tags::REFERENCED_SOP_CLASS_UID,
            VR::UI,
            "1.2.840.10008.5.1.4.1.1.4",
        );
        let mut d = Ds::new();
        d.str(tags::PATIENT_NAME, VR::PN, "Doe^Jane")
            .str(tags::INSTITUTION_NAME, VR::LO, "General Hospital")
            .str(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.4")
            .str(Tag(0x0009, 0x0010), VR::LO, "PRIVATE CREATOR")
            .seq(tags::SOURCE_IMAGE_SEQUENCE, vec![item]);
        let mut obj = d.0;
        deidentify(&mut obj, &uids);
        let text = |t| obj.element(t).ok().and_then(|e| e.to_str().ok()).map(|s| s.to_string());
        assert_eq!(text(tags::PATIENT_NAME).as_deref(), Some(""));
        assert!(obj.element_opt(tags::INSTITUTION_NAME).ok().flatten().is_none());
        assert!(obj.element_opt(Tag(0x0009, 0x0010)).ok().flatten().is_none());
        let study = text(tags::STUDY_INSTANCE_UID).expect("study uid");
        assert_eq!(study, uids.uid("1.2.3.4"));
        let seq = obj.element(tags::SOURCE_IMAGE_SEQUENCE).expect("seq");
        let item = &seq.items().expect("items")[0];
        let refd = item
            .element(tags::REFERENCED_SOP_INSTANCE_UID)
            .expect("ref")
            .to_str()
            .expect("s");
        assert_eq!(refd, study, "the same old UID maps to the same new one everywhere");
        let class = item
            .element(tags::REFERENCED_SOP_CLASS_UID)
            .expect("class")
            .to_str()
            .expect("s");
        assert_eq!(class, "1.2.840.10008.5.1.4.1.1.4");
        assert_eq!(text(tags::PATIENT_IDENTITY_REMOVED).as_deref(), Some("YES"));
    }
}
