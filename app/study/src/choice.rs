//! Which series an analysis runs on. One rule for `focal analyze`, `focal batch` and the window:
//! a series is named by UID, UID prefix, series number or description; left unnamed, the largest
//! stack of greyscale images of a modality the model takes, never an object another tool wrote
//! over the images (SEG, Parametric Map, RTSTRUCT, SR, presentation states, secondary captures,
//! PDFs) and never secondary derived images (reformats, computed maps).

use std::fmt;

use crate::{Series, Stack, StudySet};

/// SOP classes whose pixels are not an acquisition of the patient: what they are, for messages.
const OBJECT_CLASSES: &[(&str, &str)] = &[
    ("1.2.840.10008.5.1.4.1.1.66.4", "a segmentation (SEG)"),
    ("1.2.840.10008.5.1.4.1.1.30", "a parametric map"),
    ("1.2.840.10008.5.1.4.1.1.104.1", "an encapsulated PDF"),
    ("1.2.840.10008.5.1.4.1.1.7", "a secondary capture (screenshots, key images)"),
    ("1.2.840.10008.5.1.4.1.1.7.1", "a secondary capture (screenshots, key images)"),
    ("1.2.840.10008.5.1.4.1.1.7.2", "a secondary capture (screenshots, key images)"),
    ("1.2.840.10008.5.1.4.1.1.7.3", "a secondary capture (screenshots, key images)"),
    ("1.2.840.10008.5.1.4.1.1.7.4", "a secondary capture (screenshots, key images)"),
];

/// Modalities that name objects rather than images.
const OBJECT_MODALITIES: &[(&str, &str)] = &[
    ("SEG", "a segmentation (SEG)"),
    ("RTSTRUCT", "a structure set (RTSTRUCT)"),
    ("SR", "a structured report (SR)"),
    ("PR", "a presentation state (PR)"),
    ("KO", "a key object selection (KO)"),
    ("DOC", "a document (DOC)"),
    ("REG", "a registration (REG)"),
    ("RTPLAN", "a treatment plan (RTPLAN)"),
];

/// Why a series is not one an analysis takes on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Unsuitable {
    /// No stack of images at all (reports, plans, structure sets).
    NoImages,
    /// An object written over other images (what it is).
    Object(&'static str),
    /// Colour images (the photometric interpretation).
    Colour(String),
    /// Secondary derived images: reformats, computed maps (the Image Type).
    Derived(String),
    /// A modality the model does not take (the series' modality, those the model takes).
    Modality(String, Vec<String>),
}

impl Unsuitable {
    /// Whether naming the series overrides this (a reader may know that a derived series or one
    /// of another modality is what they want analysed; an object or colour picture never is).
    pub fn can_be_named(&self) -> bool {
        matches!(self, Unsuitable::Derived(_) | Unsuitable::Modality(..))
    }
}

impl fmt::Display for Unsuitable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsuitable::NoImages => write!(f, "has no images"),
            Unsuitable::Object(what) => write!(f, "is {what}, not images of the patient"),
            Unsuitable::Colour(p) => write!(f, "holds colour images ({p})"),
            Unsuitable::Derived(t) => write!(f, "holds derived images (Image Type {t})"),
            Unsuitable::Modality(m, takes) => write!(f, "is {m}; the model takes {}", takes.join(" or ")),
        }
    }
}

impl Series {
    /// Why an analysis would not pick this series on its own, or `None` when it would.
    /// `modalities`: those the model takes (empty: any).
    pub fn unsuitable(&self, modalities: &[String]) -> Option<Unsuitable> {
        let modality = self.modality.as_deref().unwrap_or("").trim();
        if let Some((_, what)) = OBJECT_MODALITIES.iter().find(|(m, _)| m.eq_ignore_ascii_case(modality)) {
            return Some(Unsuitable::Object(what));
        }
        let Some((_, stack)) = self.largest_stack() else {
            return Some(Unsuitable::NoImages);
        };
        let first = stack.slices.first().map(|s| &s.instance);
        if let Some(h) = first
            && let Some((_, what)) = OBJECT_CLASSES.iter().find(|(c, _)| *c == h.sop_class_uid)
        {
            return Some(Unsuitable::Object(what));
        }
        if stack.samples_per_pixel != 1 {
            let photometric = first.and_then(|h| h.pixels.as_ref()).map_or("RGB", |p| p.photometric.as_str());
            return Some(Unsuitable::Colour(photometric.to_string()));
        }
        if let Some(p) = first.and_then(|h| h.pixels.as_ref())
            && !p.photometric.starts_with("MONOCHROME")
        {
            return Some(Unsuitable::Colour(p.photometric.clone()));
        }
        // DERIVED\SECONDARY: made from other images after the acquisition (reformats, maps,
        // screenshots). DERIVED\PRIMARY (an average of acquisitions, a motion-corrected
        // reconstruction) is still the patient's image, as the sample's Colin27 average is.
        if let Some(t) = first.and_then(|h| h.image_type.as_deref())
            && let mut values = t.split('\\').map(str::trim)
            && values.next().is_some_and(|v| v.eq_ignore_ascii_case("DERIVED"))
            && values.next().is_some_and(|v| v.eq_ignore_ascii_case("SECONDARY"))
        {
            return Some(Unsuitable::Derived(t.to_string()));
        }
        if !modalities.is_empty() && !modalities.iter().any(|m| m.eq_ignore_ascii_case(modality)) {
            let shown = if modality.is_empty() { "of no stated modality" } else { modality };
            return Some(Unsuitable::Modality(shown.to_string(), modalities.to_vec()));
        }
        None
    }

    /// The series this one's objects were made over (a SEG's source images, an SR's evidence…),
    /// in first-seen order; empty for acquired images.
    pub fn referenced_series(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let headers = self.stacks.iter().flat_map(|st| st.slices.iter().map(|s| &s.instance)).chain(&self.non_image);
        for uid in headers.flat_map(|h| h.referenced_series.iter()) {
            if *uid != self.uid && !out.contains(uid) {
                out.push(uid.clone());
            }
        }
        out
    }

    /// How the series is named to a person: number, modality and description.
    pub fn title(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.number {
            parts.push(format!("#{n}"));
        }
        parts.push(self.modality.clone().unwrap_or_else(|| "??".into()));
        if let Some(d) = self.description.as_deref().filter(|d| !d.trim().is_empty()) {
            parts.push(format!("\"{}\"", d.trim()));
        }
        parts.join(" ")
    }
}

/// Why no series could be chosen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChoiceError {
    #[error("no series matches {selector:?} (by UID, UID prefix, number or description); the study has: {available}")]
    NoMatch { selector: String, available: String },
    #[error("{selector:?} matches {count} series ({matches}); give a UID or a longer description")]
    Ambiguous {
        selector: String,
        count: usize,
        matches: String,
    },
    #[error("series {title} ({uid}) cannot be analysed: it {why}")]
    Refused { title: String, uid: String, why: Unsuitable },
    #[error("the study has no series this model can analyse ({passed_over}); name one with --series")]
    NoneSuitable { passed_over: String },
}

/// The series chosen and how.
#[derive(Debug, Clone)]
pub struct Choice<'a> {
    pub series: &'a Series,
    pub stack_index: usize,
    pub stack: &'a Stack,
    /// How it was chosen, in words ("named by number 3", "the largest greyscale MR stack").
    pub how: String,
    /// What the rule would have held against it, where naming it overrode that.
    pub warning: Option<Unsuitable>,
    /// Series passed over when none was named, each with why.
    pub passed_over: Vec<(String, Unsuitable)>,
}

impl StudySet {
    /// The series a selector names: its UID, a unique UID prefix (6 characters or more), its
    /// series number, or (case-insensitively) its description, whole or a unique part of it.
    pub fn select_series<'a>(&'a self, selector: &str) -> Result<&'a Series, ChoiceError> {
        let wanted = selector.trim();
        let all: Vec<&Series> = self.series().collect();
        if let Some(s) = all.iter().find(|s| s.uid == wanted) {
            return Ok(s);
        }
        if let Ok(n) = wanted.trim_start_matches('#').parse::<i64>()
            && let Some(r) = unique(selector, all.iter().copied().filter(|s| s.number == Some(n)).collect())
        {
            return r;
        }
        if wanted.len() >= 6
            && let Some(r) = unique(selector, all.iter().copied().filter(|s| s.uid.starts_with(wanted)).collect())
        {
            return r;
        }
        let lower = wanted.to_lowercase();
        let description = |s: &Series| s.description.as_deref().map(|d| d.trim().to_lowercase());
        if !lower.is_empty() {
            if let Some(r) = unique(selector, all.iter().copied().filter(|s| description(s).as_deref() == Some(&lower)).collect()) {
                return r;
            }
            if let Some(r) = unique(
                selector,
                all.iter()
                    .copied()
                    .filter(|s| description(s).is_some_and(|d| d.contains(&lower)))
                    .collect(),
            ) {
                return r;
            }
        }
        Err(ChoiceError::NoMatch {
            selector: selector.to_string(),
            available: listing(all.into_iter()),
        })
    }

    /// The series an analysis runs on: the one `selector` names, or by the rule (the largest
    /// stack of the suitable series; the last of equals). `modalities`: those the model takes.
    pub fn choose_series(&self, selector: Option<&str>, modalities: &[String]) -> Result<Choice<'_>, ChoiceError> {
        if let Some(selector) = selector {
            let series = self.select_series(selector)?;
            let why = series.unsuitable(modalities);
            let refuse = |why: Unsuitable| ChoiceError::Refused {
                title: series.title(),
                uid: series.uid.clone(),
                why,
            };
            if let Some(why) = why.clone().filter(|w| !w.can_be_named()) {
                return Err(refuse(why));
            }
            let (stack_index, stack) = series.largest_stack().ok_or_else(|| refuse(Unsuitable::NoImages))?;
            return Ok(Choice {
                series,
                stack_index,
                stack,
                how: format!("named by {selector:?}"),
                warning: why,
                passed_over: Vec::new(),
            });
        }
        let mut passed_over = Vec::new();
        let mut best: Option<(&Series, usize, &Stack)> = None;
        for series in self.series() {
            if let Some(why) = series.unsuitable(modalities) {
                passed_over.push((series.title(), why));
                continue;
            }
            if let Some((i, stack)) = series.largest_stack()
                && best.is_none_or(|(_, _, b)| stack.slices.len() >= b.slices.len())
            {
                best = Some((series, i, stack));
            }
        }
        let Some((series, stack_index, stack)) = best else {
            let passed = passed_over.iter().map(|(t, w)| format!("{t} {w}")).collect::<Vec<_>>();
            return Err(ChoiceError::NoneSuitable {
                passed_over: if passed.is_empty() { "it has no series".into() } else { passed.join("; ") },
            });
        };
        let kind = if modalities.is_empty() {
            "greyscale".to_string()
        } else {
            format!("greyscale {}", modalities.join("/"))
        };
        Ok(Choice {
            series,
            stack_index,
            stack,
            how: format!("the largest {kind} stack"),
            warning: None,
            passed_over,
        })
    }
}

/// The one series found, an error when there are several, `None` when there is none.
fn unique<'a>(selector: &str, found: Vec<&'a Series>) -> Option<Result<&'a Series, ChoiceError>> {
    match found.len() {
        0 => None,
        1 => Some(Ok(found[0])),
        count => Some(Err(ChoiceError::Ambiguous {
            selector: selector.to_string(),
            count,
            matches: listing(found.into_iter()),
        })),
    }
}

/// Series as a person reads them in a message: title and UID, a few at most.
fn listing<'a>(series: impl Iterator<Item = &'a Series>) -> String {
    let all: Vec<String> = series.map(|s| format!("{} {}", s.title(), s.uid)).collect();
    if all.is_empty() {
        return "no series".into();
    }
    let shown = all.len().min(8);
    let mut text = all[..shown].join(", ");
    if all.len() > shown {
        text.push_str(&format!(" and {} more", all.len() - shown));
    }
    text
}
