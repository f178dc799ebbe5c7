//! The report's text in any script: names and notes in Chinese, Japanese, Korean, Greek or
//! Cyrillic print as written. The text is set in DejaVu Sans (Latin, Greek, Cyrillic; regular
//! and bold) with Droid Sans Fallback for the characters DejaVu lacks (CJK), each embedded as a
//! subset of the glyphs used (subsetter) as a CID font with a ToUnicode map, so the PDF's text
//! layer can be searched and copied. Without those fonts (Debian: fonts-dejavu-core,
//! fonts-droid-fallback; or `$FOCAL_FONT_DIR`) the text falls back to standard Helvetica, which
//! shows only WinAnsi and prints other characters as '?'; the export then says so.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Filter, Finish, Name, Pdf, Rect, Ref, Str};

/// The font files, by role: regular, bold, and the fallback for what those lack.
const FILES: [(&str, &str); 3] = [
    ("dejavu", "DejaVuSans.ttf"),
    ("dejavu", "DejaVuSans-Bold.ttf"),
    ("droid", "DroidSansFallbackFull.ttf"),
];

/// Where the font files are looked for: `$FOCAL_FONT_DIR` (the files directly in it), then
/// Debian's folders.
fn font_path(folder: &str, file: &str) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(d) = std::env::var_os("FOCAL_FONT_DIR") {
        candidates.push(PathBuf::from(d).join(file));
    }
    candidates.push(PathBuf::from("/usr/share/fonts/truetype").join(folder).join(file));
    candidates.into_iter().find(|p| p.is_file())
}

/// One embedded face: its file, the glyphs used so far (renumbered for the subset) and the
/// character each glyph shows.
struct Face {
    resource: &'static [u8],
    postscript: &'static str,
    data: Vec<u8>,
    remapper: subsetter::GlyphRemapper,
    /// New glyph id → (character, advance in font units).
    used: BTreeMap<u16, (char, u16)>,
}

impl Face {
    fn load(resource: &'static [u8], postscript: &'static str, folder: &str, file: &str) -> Option<Face> {
        let data = std::fs::read(font_path(folder, file)?).ok()?;
        ttf_parser::Face::parse(&data, 0).ok()?;
        Some(Face {
            resource,
            postscript,
            data,
            remapper: subsetter::GlyphRemapper::new(),
            used: BTreeMap::new(),
        })
    }

    fn parsed(&self) -> Option<ttf_parser::Face<'_>> {
        ttf_parser::Face::parse(&self.data, 0).ok()
    }

    /// The glyph of `c` and its advance (font units, units per em), if the face has one.
    fn glyph(&self, c: char) -> Option<(u16, u16, u16)> {
        let f = self.parsed()?;
        let g = f.glyph_index(c)?;
        Some((g.0, f.glyph_hor_advance(g).unwrap_or(0), f.units_per_em()))
    }
}

/// The fonts of one report.
pub struct Fonts {
    /// Regular, bold, fallback; empty when the files are missing (standard Helvetica then).
    faces: Vec<Face>,
}

/// A run of text in one font: its resource name and the bytes of a `Tj` string.
pub struct Run {
    pub font: &'static [u8],
    pub bytes: Vec<u8>,
}

impl Fonts {
    /// The embedded fonts, or the standard ones when a file is missing.
    pub fn load() -> Fonts {
        let faces: Option<Vec<Face>> = [(b"F1" as &[u8], "DejaVuSans"), (b"F2", "DejaVuSans-Bold"), (b"F3", "DroidSansFallback")]
            .into_iter()
            .zip(FILES)
            .map(|((resource, name), (folder, file))| Face::load(resource, name, folder, file))
            .collect();
        if faces.is_none() {
            tracing::warn!(
                "the report's fonts (DejaVu Sans, Droid Sans Fallback) were not found: its text is in standard Helvetica, and characters outside WinAnsi print as '?'"
            );
        }
        Fonts { faces: faces.unwrap_or_default() }
    }

    /// Whether any script can be shown (the fonts were found), or only WinAnsi.
    pub fn unicode(&self) -> bool {
        !self.faces.is_empty()
    }

    /// The face a character is set in: the weight's own, else the fallback, else the weight's
    /// own ('?' shown instead).
    fn face_of(&self, c: char, bold: bool) -> Option<(usize, char)> {
        if self.faces.is_empty() {
            return None;
        }
        let own = usize::from(bold);
        let has = |i: usize, c: char| self.faces[i].glyph(c).is_some_and(|(g, _, _)| g != 0);
        Some(if has(own, c) {
            (own, c)
        } else if has(2, c) {
            (2, c)
        } else {
            (own, '?')
        })
    }

    /// Width of `text` at `size` points.
    pub fn width(&self, text: &str, bold: bool, size: f32) -> f32 {
        if self.faces.is_empty() {
            // Helvetica's average advance.
            return text.chars().count() as f32 * size * 0.5;
        }
        text.chars()
            .filter_map(|c| {
                let (i, c) = self.face_of(c, bold)?;
                let (_, advance, em) = self.faces[i].glyph(c)?;
                Some(f32::from(advance) / f32::from(em.max(1)) * size)
            })
            .sum()
    }

    /// `text` as runs of one font each, recording the glyphs used.
    pub fn runs(&mut self, text: &str, bold: bool) -> Vec<Run> {
        if self.faces.is_empty() {
            return vec![Run {
                font: if bold { b"F2" } else { b"F1" },
                bytes: winansi(text),
            }];
        }
        let mut runs: Vec<Run> = Vec::new();
        for c in text.chars() {
            let Some((i, c)) = self.face_of(c, bold) else { continue };
            let Some((old, advance, _)) = self.faces[i].glyph(c) else { continue };
            let face = &mut self.faces[i];
            let new = face.remapper.remap(old);
            face.used.entry(new).or_insert((c, advance));
            match runs.last_mut() {
                Some(run) if run.font == face.resource => run.bytes.extend(new.to_be_bytes()),
                _ => runs.push(Run {
                    font: face.resource,
                    bytes: new.to_be_bytes().to_vec(),
                }),
            }
        }
        runs
    }

    /// Writes the fonts used; returns (resource name, font object) for every page's resources.
    pub fn write(self, pdf: &mut Pdf, alloc: &mut dyn FnMut() -> Ref) -> Vec<(&'static [u8], Ref)> {
        if self.faces.is_empty() {
            let (regular, bold) = (alloc(), alloc());
            pdf.type1_font(regular)
                .base_font(Name(b"Helvetica"))
                .encoding_predefined(Name(b"WinAnsiEncoding"));
            pdf.type1_font(bold)
                .base_font(Name(b"Helvetica-Bold"))
                .encoding_predefined(Name(b"WinAnsiEncoding"));
            return vec![(b"F1", regular), (b"F2", bold)];
        }
        let mut written = Vec::new();
        for (k, face) in self.faces.iter().enumerate() {
            if face.used.is_empty() {
                continue;
            }
            let Ok(subset) = subsetter::subset(&face.data, 0, &face.remapper) else { continue };
            let Some(parsed) = face.parsed() else { continue };
            let em = f32::from(parsed.units_per_em().max(1));
            let scale = |v: f32| v / em * 1000.0;
            // A subset's name carries a tag of six capitals (PDF 32000 9.6.4), one per face.
            let base = format!("FOCAL{}+{}", (b'A' + k as u8) as char, face.postscript);
            let (type0, cid, descriptor, file, cmap) = (alloc(), alloc(), alloc(), alloc(), alloc());
            pdf.type0_font(type0)
                .base_font(Name(base.as_bytes()))
                .encoding_predefined(Name(b"Identity-H"))
                .descendant_font(cid)
                .to_unicode(cmap);
            let info = SystemInfo {
                registry: Str(b"Adobe"),
                ordering: Str(b"Identity"),
                supplement: 0,
            };
            let mut font = pdf.cid_font(cid);
            font.subtype(CidFontType::Type2);
            font.base_font(Name(base.as_bytes()));
            font.system_info(info);
            font.font_descriptor(descriptor);
            font.default_width(0.0);
            font.cid_to_gid_map_predefined(Name(b"Identity"));
            let mut widths = font.widths();
            for (gid, (_, advance)) in &face.used {
                widths.consecutive(*gid, [scale(f32::from(*advance))]);
            }
            widths.finish();
            font.finish();
            let b = parsed.global_bounding_box();
            let mut d = pdf.font_descriptor(descriptor);
            d.name(Name(base.as_bytes()))
                .flags(FontFlags::NON_SYMBOLIC)
                .bbox(Rect::new(
                    scale(f32::from(b.x_min)),
                    scale(f32::from(b.y_min)),
                    scale(f32::from(b.x_max)),
                    scale(f32::from(b.y_max)),
                ))
                .italic_angle(0.0)
                .ascent(scale(f32::from(parsed.ascender())))
                .descent(scale(f32::from(parsed.descender())))
                .cap_height(scale(f32::from(parsed.capital_height().unwrap_or(parsed.ascender()))))
                .stem_v(if k == 1 { 120.0 } else { 80.0 })
                .font_file2(file);
            d.finish();
            let compressed = miniz_oxide::deflate::compress_to_vec_zlib(&subset, 6);
            pdf.stream(file, &compressed).filter(Filter::FlateDecode);
            let mut unicode = UnicodeCmap::new(Name(b"Custom"), info);
            for (gid, (c, _)) in &face.used {
                unicode.pair(*gid, *c);
            }
            pdf.cmap(cmap, &unicode.finish());
            written.push((face.resource, type0));
        }
        written
    }
}

/// Text in WinAnsi (what Helvetica without embedding can show); other characters become '?'.
pub fn winansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '–' => 0x96,
            '—' => 0x97,
            '…' => 0x85,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            _ => b'?',
        })
        .collect()
}
