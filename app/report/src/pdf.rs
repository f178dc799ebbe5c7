//! The PDF report: real text in any script (embedded subset fonts, `pdf_text`), key images
//! embedded as rendered, colour bars drawn as vector rectangles.

use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str};

use crate::pdf_text::Fonts;
use crate::render::{Colormap, RgbaImage};

/// A key image page entry.
pub struct KeyImageBlock {
    pub image: RgbaImage,
    pub caption: String,
    /// Colormap, display range and threshold of the heatmap overlay, when shown.
    pub colour_bar: Option<(Colormap, [f32; 2], f32)>,
    /// What the heatmap shows ("attention", "evidence").
    pub heatmap: String,
    /// Label legend (name, colour) when the mask is shown.
    pub legend: Vec<(String, [u8; 3])>,
}

/// Everything the report says, already de-identified when asked.
pub struct ReportContent {
    pub title: String,
    pub warning: String,
    pub study_lines: Vec<String>,
    pub identity_line: String,
    pub model_lines: Vec<String>,
    /// Table rows; the first is the header.
    pub findings: Vec<Vec<String>>,
    /// Volumes outside adult norms (shown in red under the findings).
    pub warnings: Vec<String>,
    /// The reader's measurements, one line each.
    pub measurements: Vec<String>,
    /// What the model relied on: the attention's deletion test, evidence maps.
    pub reliance_lines: Vec<String>,
    /// Mean weight of each series per label (the first row is the header); empty for one series.
    pub modality_table: Vec<Vec<String>>,
    /// Key regions (the first row is the header); None when the analysis did not look for them.
    pub key_regions: Option<Vec<Vec<String>>>,
    /// Regions set aside as likely physiological, one line each.
    pub key_regions_set_aside: Vec<String>,
    pub impression: String,
    pub sign_off: String,
    pub limits: Vec<String>,
    pub key_images: Vec<KeyImageBlock>,
}

const PAGE: (f32, f32) = (595.0, 842.0); // A4 in points
const MARGIN: f32 = 50.0;

/// Lines of at most `width` points of `size`-point text: broken between words, and inside a
/// word longer than a line (CJK text has no spaces).
fn wrap(fonts: &Fonts, text: &str, bold: bool, size: f32, width: f32) -> Vec<String> {
    let fits = |s: &str| fonts.width(s, bold, size) <= width;
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            let joined = if line.is_empty() { word.to_string() } else { format!("{line} {word}") };
            if fits(&joined) {
                line = joined;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            for c in word.chars() {
                line.push(c);
                if !fits(&line) && line.chars().count() > 1 {
                    line.pop();
                    lines.push(std::mem::replace(&mut line, c.to_string()));
                }
            }
        }
        lines.push(line);
    }
    lines
}

struct Writer {
    fonts: Fonts,
    pages: Vec<Content>,
    y: f32,
    images: Vec<(usize, RgbaImage)>,
}

impl Writer {
    fn new_page(&mut self) {
        self.pages.push(Content::new());
        self.y = PAGE.1 - MARGIN;
    }

    fn page(&mut self) -> &mut Content {
        if self.pages.is_empty() {
            self.new_page();
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    fn need(&mut self, height: f32) {
        if self.y - height < MARGIN {
            self.new_page();
        }
    }

    /// `font`: b"F1" regular, b"F2" bold (the weight; the font of each character is chosen by
    /// `Fonts`).
    fn text_at(&mut self, x: f32, y: f32, font: &[u8], size: f32, colour: [f32; 3], text: &str) {
        let runs = self.fonts.runs(text, font == b"F2");
        let c = self.page();
        c.set_fill_rgb(colour[0], colour[1], colour[2]);
        c.begin_text();
        c.next_line(x, y);
        for run in &runs {
            c.set_font(Name(run.font), size);
            c.show(Str(&run.bytes));
        }
        c.end_text();
    }

    fn paragraph(&mut self, text: &str, font: &[u8], size: f32, colour: [f32; 3]) {
        for line in wrap(&self.fonts, text, font == b"F2", size, PAGE.0 - 2.0 * MARGIN) {
            self.need(size * 1.35);
            self.y -= size * 1.35;
            let y = self.y;
            self.text_at(MARGIN, y, font, size, colour, &line);
        }
    }

    fn heading(&mut self, text: &str) {
        self.need(40.0);
        self.y -= 10.0;
        self.paragraph(text, b"F2", 13.0, [0.1, 0.1, 0.1]);
        self.y -= 2.0;
    }

    fn table(&mut self, rows: &[Vec<String>]) {
        let columns = rows.first().map_or(0, Vec::len).max(1);
        let widths: Vec<f32> = match columns {
            6 => vec![85.0, 60.0, 55.0, 70.0, 75.0, 150.0],
            7 => vec![50.0, 45.0, 42.0, 62.0, 52.0, 122.0, 122.0],
            n => vec![(PAGE.0 - 2.0 * MARGIN) / n as f32; n],
        };
        for (r, row) in rows.iter().enumerate() {
            // Wrap each cell to its column; the row is as tall as its tallest cell.
            let cells: Vec<Vec<String>> =
                row.iter().zip(&widths).map(|(t, w)| wrap(&self.fonts, t, r == 0, 9.0, w - 6.0)).collect();
            let height = cells.iter().map(Vec::len).max().unwrap_or(1) as f32 * 11.0 + 4.0;
            self.need(height);
            let top = self.y;
            let mut x = MARGIN;
            let font: &[u8] = if r == 0 { b"F2" } else { b"F1" };
            for (cell, w) in cells.iter().zip(&widths) {
                for (i, line) in cell.iter().enumerate() {
                    self.text_at(x + 2.0, top - 11.0 * (i as f32 + 1.0), font, 9.0, [0.0, 0.0, 0.0], line);
                }
                x += w;
            }
            self.y -= height;
            let y = self.y;
            let c = self.page();
            c.set_stroke_rgb(0.7, 0.7, 0.7);
            c.set_line_width(0.5);
            c.move_to(MARGIN, y);
            c.line_to(x, y);
            c.stroke();
        }
    }

    fn key_image(&mut self, block: KeyImageBlock) {
        let max_w = PAGE.0 - 2.0 * MARGIN - 70.0;
        let scale = (max_w / block.image.width as f32).min(330.0 / block.image.height as f32);
        let (w, h) = (block.image.width as f32 * scale, block.image.height as f32 * scale);
        self.need(h + 40.0);
        self.y -= h + 6.0;
        let (x, y) = (MARGIN, self.y);
        let index = self.images.len();
        let page = self.pages.len() - 1;
        self.images.push((page, block.image));
        let c = self.page();
        c.save_state();
        c.transform([w, 0.0, 0.0, h, x, y]);
        c.x_object(Name(format!("Im{index}").as_bytes()));
        c.restore_state();
        if let Some((map, [lo, hi], threshold)) = block.colour_bar {
            let (bx, bw) = (x + w + 12.0, 12.0);
            let steps = 64;
            for s in 0..steps {
                let t = s as f32 / (steps - 1) as f32;
                let [r, g, b] = map.color(t);
                let value = lo + t * (hi - lo);
                let dim = if value < threshold { 0.35 } else { 1.0 };
                let c = self.page();
                c.set_fill_rgb(
                    f32::from(r) / 255.0 * dim + (1.0 - dim),
                    f32::from(g) / 255.0 * dim + (1.0 - dim),
                    f32::from(b) / 255.0 * dim + (1.0 - dim),
                );
                c.rect(bx, y + h * s as f32 / steps as f32, bw, h / steps as f32 + 0.3);
                c.fill_nonzero();
            }
            let span = (hi - lo).max(1e-6);
            for (v, label) in [
                (hi, format!("{hi:.2}")),
                (threshold, format!("{threshold:.2} threshold")),
                (lo, format!("{lo:.2}")),
            ] {
                let ty = y + h * ((v - lo) / span).clamp(0.0, 1.0) - 3.0;
                self.text_at(bx + bw + 3.0, ty, b"F1", 7.0, [0.0, 0.0, 0.0], &label);
            }
            let label = block.heatmap.clone();
            self.text_at(bx - 2.0, y + h + 4.0, b"F1", 7.0, [0.0, 0.0, 0.0], &label);
        }
        let mut legend_x = MARGIN;
        self.y -= 12.0;
        let ly = self.y;
        for (name, [r, g, b]) in &block.legend {
            let c = self.page();
            c.set_fill_rgb(f32::from(*r) / 255.0, f32::from(*g) / 255.0, f32::from(*b) / 255.0);
            c.set_stroke_rgb(0.3, 0.3, 0.3);
            c.rect(legend_x, ly, 8.0, 8.0);
            c.fill_nonzero_and_stroke();
            self.text_at(legend_x + 11.0, ly + 1.0, b"F1", 8.0, [0.0, 0.0, 0.0], name);
            legend_x += 20.0 + self.fonts.width(name, false, 8.0);
        }
        self.paragraph(&block.caption, b"F1", 9.0, [0.15, 0.15, 0.15]);
        self.y -= 8.0;
    }
}

/// Lays the report out on A4 pages.
pub fn write_pdf(content: ReportContent) -> Vec<u8> {
    let mut w = Writer {
        fonts: Fonts::load(),
        pages: Vec::new(),
        y: 0.0,
        images: Vec::new(),
    };
    w.new_page();
    w.paragraph(&content.title, b"F2", 18.0, [0.0, 0.0, 0.0]);
    w.paragraph(&content.warning, b"F2", 11.0, [0.75, 0.1, 0.1]);
    w.heading("Study");
    for l in &content.study_lines {
        w.paragraph(l, b"F1", 10.0, [0.0, 0.0, 0.0]);
    }
    w.paragraph(&content.identity_line, b"F1", 10.0, [0.2, 0.2, 0.5]);
    // A section with nothing in it is left out: a picture report (images without an analysis,
    // `pictures.rs`) has no model, findings, reliance or limits.
    if !content.model_lines.is_empty() {
        w.heading("Model");
        for l in &content.model_lines {
            w.paragraph(l, b"F1", 10.0, [0.0, 0.0, 0.0]);
        }
    }
    if !content.findings.is_empty() {
        w.heading("Findings");
        w.table(&content.findings);
    }
    for warning in &content.warnings {
        w.paragraph(&format!("WARNING: {warning}"), b"F2", 10.0, [0.75, 0.1, 0.1]);
    }
    if let Some(rows) = &content.key_regions {
        w.heading("Key regions");
        w.paragraph(
            &format!(
                "{} Each is a connected set of voxels far, in healthy tissue's own spread, from every tissue and every mixture of the tissues around it in the model fitted to this scan; the series column says how much each series contributed and whether the region is brighter or darker there.",
                crate::inference::key_regions::MEANING
            ),
            b"F1",
            9.5,
            [0.0, 0.0, 0.0],
        );
        if rows.len() > 1 {
            w.table(rows);
        } else {
            w.paragraph("None found: no region departs from this scan's healthy tissue.", b"F1", 10.0, [0.0, 0.0, 0.0]);
        }
        if !content.key_regions_set_aside.is_empty() {
            w.paragraph(
                &format!(
                    "Set aside as likely physiological ({}): {}. This was developed on two contrast-enhanced scans and checked on vessels, sinuses and dura pasted into healthy heads, not on real scans held out; a region set aside may still be a lesion.",
                    content.key_regions_set_aside.len(),
                    crate::inference::key_regions::SET_ASIDE_MEANING
                ),
                b"F1",
                9.5,
                [0.0, 0.0, 0.0],
            );
            for line in &content.key_regions_set_aside {
                w.paragraph(&format!("• {line}"), b"F1", 9.5, [0.0, 0.0, 0.0]);
            }
        }
    }
    if !content.measurements.is_empty() {
        w.heading("Measurements");
        for m in &content.measurements {
            w.paragraph(&format!("• {m}"), b"F1", 10.0, [0.0, 0.0, 0.0]);
        }
    }
    if !content.reliance_lines.is_empty() {
        w.heading("What the model relied on");
        for l in &content.reliance_lines {
            w.paragraph(l, b"F1", 10.0, [0.0, 0.0, 0.0]);
        }
    }
    if !content.modality_table.is_empty() {
        w.y -= 4.0;
        w.table(&content.modality_table);
    }
    w.heading("Impression");
    let impression = if content.impression.trim().is_empty() {
        "(none written)"
    } else {
        &content.impression
    };
    w.paragraph(impression, b"F1", 10.0, [0.0, 0.0, 0.0]);
    w.paragraph(&content.sign_off, b"F2", 10.0, [0.0, 0.0, 0.0]);
    if !content.limits.is_empty() {
        w.heading("Limits of the model");
        for l in &content.limits {
            w.paragraph(&format!("• {l}"), b"F1", 9.5, [0.0, 0.0, 0.0]);
        }
    }
    if !content.key_images.is_empty() {
        w.new_page();
        w.heading("Key images");
        for block in content.key_images {
            w.key_image(block);
        }
    }
    // Footer on every page.
    let count = w.pages.len();
    for i in 0..count {
        let footer = format!(
            "Focal {} - {} - page {} of {count}",
            env!("CARGO_PKG_VERSION"),
            super::NOT_FOR_DIAGNOSIS,
            i + 1
        );
        let runs = w.fonts.runs(&footer, false);
        let page = &mut w.pages[i];
        page.set_fill_rgb(0.4, 0.4, 0.4);
        page.begin_text();
        page.next_line(MARGIN, 28.0);
        for run in &runs {
            page.set_font(Name(run.font), 8.0);
            page.show(Str(&run.bytes));
        }
        page.end_text();
    }

    let Writer { fonts, pages, images, .. } = w;
    let mut pdf = Pdf::new();
    let mut next = 1;
    let mut alloc = || {
        let r = Ref::new(next);
        next += 1;
        r
    };
    let (catalog, tree) = (alloc(), alloc());
    let page_ids: Vec<(Ref, Ref)> = (0..pages.len()).map(|_| (alloc(), alloc())).collect();
    let image_ids: Vec<Ref> = (0..images.len()).map(|_| alloc()).collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().map(|p| p.0))
        .count(page_ids.len() as i32);
    let fonts = fonts.write(&mut pdf, &mut alloc);
    for (i, (content, (page_id, content_id))) in pages.into_iter().zip(&page_ids).enumerate() {
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE.0, PAGE.1));
        page.parent(tree);
        page.contents(*content_id);
        let mut resources = page.resources();
        let mut font_dict = resources.fonts();
        for (name, id) in &fonts {
            font_dict.pair(Name(name), *id);
        }
        font_dict.finish();
        let mut xobjects = resources.x_objects();
        for (k, (p, _)) in images.iter().enumerate() {
            if *p == i {
                xobjects.pair(Name(format!("Im{k}").as_bytes()), image_ids[k]);
            }
        }
        xobjects.finish();
        resources.finish();
        page.finish();
        let bytes = content.finish();
        pdf.stream(*content_id, &bytes);
    }
    for ((_, image), id) in images.iter().zip(&image_ids) {
        let rgb: Vec<u8> = image.data.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        let compressed = miniz_oxide::deflate::compress_to_vec_zlib(&rgb, 6);
        let mut x = pdf.image_xobject(*id, &compressed);
        x.filter(Filter::FlateDecode);
        x.width(image.width as i32);
        x.height(image.height as i32);
        x.color_space().device_rgb();
        x.bits_per_component(8);
        x.finish();
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_outside_winansi_is_replaced_not_dropped_without_the_fonts() {
        assert_eq!(crate::pdf_text::winansi("a–b µ ≥"), vec![b'a', 0x96, b'b', b' ', 0xb5, b' ', b'?']);
    }

    #[test]
    fn lines_wrap_between_words_and_inside_long_ones() {
        let fonts = Fonts::load();
        let lines = wrap(&fonts, "one two three four five six seven eight nine ten eleven", false, 10.0, 100.0);
        assert!(lines.len() > 1 && lines.iter().all(|l| fonts.width(l, false, 10.0) <= 100.0), "{lines:?}");
        let cjk = "患者姓名王小明检查日期二零二六年十二月六日脑部磁共振成像";
        let lines = wrap(&fonts, cjk, false, 10.0, 60.0);
        assert!(lines.len() > 1, "{lines:?}");
        assert_eq!(lines.concat(), cjk, "nothing lost in the breaking");
    }
}
