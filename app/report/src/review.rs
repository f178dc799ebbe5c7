//! The reader's review of an analysis: per-label findings accepted or rejected with notes, key
//! images, impression and sign-off. Saved as review.json beside the analysis output.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::render::SliceStyle;

pub const REVIEW_FILE: &str = "review.json";
pub use crate::inference::output::REVIEWED_LABELS_FILE;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Decision {
    #[default]
    Pending,
    Accepted,
    Rejected,
}

impl Decision {
    pub fn name(self) -> &'static str {
        match self {
            Decision::Pending => "not reviewed",
            Decision::Accepted => "accepted",
            Decision::Rejected => "rejected",
        }
    }
}

/// One label's result: what the (possibly corrected) map measures, and the reader's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub label: u8,
    pub name: String,
    pub voxels: usize,
    pub volume_ml: f64,
    /// First and last slice (0-based) holding the label.
    pub slice_range: Option<[usize; 2]>,
    /// The model's mean probability over the label's voxels.
    pub mean_confidence: Option<f64>,
    pub decision: Decision,
    pub note: String,
}

/// A slice the reader marked, with how it looked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyImage {
    pub slice: usize,
    pub style: SliceStyle,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Review {
    pub findings: Vec<Finding>,
    pub key_images: Vec<KeyImage>,
    pub impression: String,
    pub reader: String,
    /// When the reader signed (local time, "YYYY-MM-DD HH:MM"); None until signed.
    pub signed_at: Option<String>,
    /// True once the reader corrected the label map.
    pub edited: bool,
    /// Distances and regions the reader measured (older reviews have none).
    #[serde(default)]
    pub measurements: Vec<Measurement>,
    /// The reader's verdict on key regions, by region id (none until the reader gives one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<RegionVerdict>,
}

/// The reader's verdict on one key region.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RegionVerdict {
    pub id: u32,
    pub decision: Decision,
    pub note: String,
}

impl Review {
    /// The verdict on key region `id` (not reviewed, no note, when none was given).
    pub fn region(&self, id: u32) -> RegionVerdict {
        self.regions.iter().find(|r| r.id == id).cloned().unwrap_or(RegionVerdict { id, ..RegionVerdict::default() })
    }

    /// Sets the verdict on key region `id`, keeping its note, or its note.
    pub fn set_region(&mut self, id: u32, decision: Option<Decision>, note: Option<String>) {
        let i = match self.regions.iter().position(|r| r.id == id) {
            Some(i) => i,
            None => {
                self.regions.push(RegionVerdict { id, ..RegionVerdict::default() });
                self.regions.len() - 1
            }
        };
        if let Some(d) = decision {
            self.regions[i].decision = d;
        }
        if let Some(n) = note {
            self.regions[i].note = n;
        }
    }
}

/// What the reader drew, in pixel coordinates of its slice (x along columns, y along rows;
/// the centre of pixel (i, j) is (i + 0.5, j + 0.5)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Shape {
    /// A distance between two points.
    Line { from: [f64; 2], to: [f64; 2] },
    /// An axis-aligned ellipse region.
    Ellipse { center: [f64; 2], radii: [f64; 2] },
    /// A freehand region: the closed polygon through these points.
    Polygon { points: Vec<[f64; 2]> },
}

impl Shape {
    /// Whether the point (x, y) lies inside the region (never for a line).
    fn contains(&self, x: f64, y: f64) -> bool {
        match self {
            Shape::Line { .. } => false,
            Shape::Ellipse { center, radii } => {
                let u = (x - center[0]) / radii[0];
                let v = (y - center[1]) / radii[1];
                radii[0] > 0.0 && radii[1] > 0.0 && u * u + v * v <= 1.0
            }
            Shape::Polygon { points } => crate::study::geometry::inside_polygon(points, x, y),
        }
    }

    /// [x0, y0, x1, y1] around the region.
    pub fn bounds(&self) -> [f64; 4] {
        match self {
            Shape::Line { from, to } => [from[0].min(to[0]), from[1].min(to[1]), from[0].max(to[0]), from[1].max(to[1])],
            Shape::Ellipse { center, radii } => [
                center[0] - radii[0],
                center[1] - radii[1],
                center[0] + radii[0],
                center[1] + radii[1],
            ],
            Shape::Polygon { points } => points.iter().fold(
                [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY],
                |b, p| [b[0].min(p[0]), b[1].min(p[1]), b[2].max(p[0]), b[3].max(p[1])],
            ),
        }
    }

    /// Area in pixel units (shoelace formula for the polygon).
    fn pixel_area(&self) -> f64 {
        match self {
            Shape::Line { .. } => 0.0,
            Shape::Ellipse { radii, .. } => std::f64::consts::PI * radii[0] * radii[1],
            Shape::Polygon { points } => {
                let twice: f64 = points
                    .iter()
                    .enumerate()
                    .map(|(k, a)| {
                        let b = points[(k + 1) % points.len()];
                        a[0] * b[1] - b[0] * a[1]
                    })
                    .sum();
                twice.abs() / 2.0
            }
        }
    }
}

/// One measurement on one slice, with what it measured when drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// The acquired slice it was drawn on (for one drawn on a reformatted plane: the slice
    /// nearest its centre).
    pub slice: usize,
    pub shape: Shape,
    pub stats: ShapeStats,
    /// Drawn on a reformatted plane: where that plane's picture lies (the shape's coordinates
    /// are in it). None: on the acquired slice, in its pixel coordinates.
    #[serde(default)]
    pub plane: Option<crate::study::reformat::Placement>,
}

/// Length, area and the statistics of the pixels inside (modality values, e.g. HU, and the
/// heatmap shown: attention or evidence).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShapeStats {
    pub length_mm: Option<f64>,
    pub area_mm2: Option<f64>,
    /// Pixels whose centre lies inside the region.
    pub pixels: usize,
    pub mean: Option<f64>,
    pub sd: Option<f64>,
    /// Which heatmap `heat_mean` and `heat_sd` are of ("attention", "evidence").
    #[serde(default)]
    pub heat: Option<String>,
    pub heat_mean: Option<f64>,
    pub heat_sd: Option<f64>,
}

/// Mean and sample standard deviation.
fn mean_sd(values: impl Iterator<Item = f64>) -> (Option<f64>, Option<f64>) {
    let (mut n, mut sum, mut sq) = (0usize, 0f64, 0f64);
    for v in values.filter(|v| v.is_finite()) {
        n += 1;
        sum += v;
        sq += v * v;
    }
    if n == 0 {
        return (None, None);
    }
    let mean = sum / n as f64;
    let var = if n > 1 { ((sq - n as f64 * mean * mean) / (n - 1) as f64).max(0.0) } else { 0.0 };
    (Some(mean), Some(var.sqrt()))
}

/// Measures `shape` on one slice of `columns` × `rows` grey values (`spacing` in mm, column
/// then row), and on the heatmap of that slice when there is one.
pub fn measure_shape(
    shape: &Shape,
    spacing: [f64; 2],
    [columns, rows]: [usize; 2],
    image: &[f32],
    heat: Option<(&str, &[f32])>,
) -> ShapeStats {
    if let Shape::Line { from, to } = shape {
        let dx = (to[0] - from[0]) * spacing[0];
        let dy = (to[1] - from[1]) * spacing[1];
        return ShapeStats {
            length_mm: Some((dx * dx + dy * dy).sqrt()),
            ..ShapeStats::default()
        };
    }
    let [bx0, by0, bx1, by1] = shape.bounds();
    let clamp = |v: f64, n: usize| (v.max(0.0) as usize).min(n);
    let (x0, x1) = (clamp(bx0.floor(), columns), clamp(bx1.ceil(), columns));
    let (y0, y1) = (clamp(by0.floor(), rows), clamp(by1.ceil(), rows));
    let inside: Vec<usize> = (y0..y1)
        .flat_map(|j| (x0..x1).map(move |i| (i, j)))
        .filter(|&(i, j)| shape.contains(i as f64 + 0.5, j as f64 + 0.5))
        .map(|(i, j)| j * columns + i)
        .collect();
    // Pixels without a value (NaN: outside a reformatted stack) do not count.
    let (mean, sd) = mean_sd(inside.iter().filter_map(|&k| image.get(k)).filter(|v| v.is_finite()).map(|&v| f64::from(v)));
    let (heat_mean, heat_sd) = match heat {
        Some((_, h)) => mean_sd(inside.iter().filter_map(|&k| h.get(k)).map(|&v| f64::from(v))),
        None => (None, None),
    };
    ShapeStats {
        length_mm: None,
        area_mm2: Some(shape.pixel_area() * spacing[0] * spacing[1]),
        pixels: inside.len(),
        mean,
        sd,
        heat: heat.map(|(name, _)| name.to_string()),
        heat_mean,
        heat_sd,
    }
}

impl Shape {
    /// Points along the drawn outline (pixel coordinates), at most `step` pixels apart: the
    /// segment of a line, the closed ellipse or polygon (first point repeated at the end).
    pub fn outline(&self, step: f64) -> Vec<[f64; 2]> {
        let step = step.max(1e-3);
        let along = |a: [f64; 2], b: [f64; 2], out: &mut Vec<[f64; 2]>| {
            let n = ((b[0] - a[0]).hypot(b[1] - a[1]) / step).ceil().max(1.0) as usize;
            out.extend((0..n).map(|k| {
                let t = k as f64 / n as f64;
                [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t]
            }));
        };
        let mut out = Vec::new();
        match self {
            Shape::Line { from, to } => {
                along(*from, *to, &mut out);
                out.push(*to);
            }
            Shape::Ellipse { center, radii } => {
                let n = (std::f64::consts::TAU * radii[0].max(radii[1]) / step).ceil().max(16.0) as usize;
                out.extend((0..=n).map(|k| {
                    let t = k as f64 / n as f64 * std::f64::consts::TAU;
                    [center[0] + radii[0] * t.cos(), center[1] + radii[1] * t.sin()]
                }));
            }
            Shape::Polygon { points } => {
                for (k, a) in points.iter().enumerate() {
                    along(*a, points[(k + 1) % points.len()], &mut out);
                }
                out.extend(points.first().copied());
            }
        }
        out
    }
}

impl Measurement {
    /// One line for the window and the report: "slice 12: distance 34.5 mm" or "slice 12:
    /// ellipse 123 mm², 80 px, mean 45.2 ± 6.1 HU, attention 0.120 ± 0.030" (`unit` after
    /// values, e.g. " HU").
    pub fn describe(&self, unit: &str) -> String {
        let s = &self.stats;
        let mut text = match &self.plane {
            Some(p) => format!("{}: ", p.describe()),
            None => format!("slice {}: ", self.slice + 1),
        };
        match self.shape {
            Shape::Line { .. } => text.push_str(&format!("distance {:.1} mm", s.length_mm.unwrap_or(0.0))),
            Shape::Ellipse { .. } | Shape::Polygon { .. } => {
                let kind = if matches!(self.shape, Shape::Ellipse { .. }) { "ellipse" } else { "region" };
                text.push_str(&format!("{kind} {:.0} mm², {} px", s.area_mm2.unwrap_or(0.0), s.pixels));
                if let (Some(m), Some(sd)) = (s.mean, s.sd) {
                    text.push_str(&format!(", mean {m:.1} ± {sd:.1}{unit}"));
                }
                if let (Some(name), Some(m), Some(sd)) = (&s.heat, s.heat_mean, s.heat_sd) {
                    text.push_str(&format!(", {name} {m:.3} ± {sd:.3}"));
                }
            }
        }
        text
    }
}

/// Measures every non-background label of a label volume (`n` voxels per slice).
pub fn measure(
    labels: &[u8],
    n: usize,
    voxel_ml: f64,
    names: &[(u8, String)],
    confidence: &dyn Fn(u8) -> Option<f64>,
) -> Vec<Finding> {
    names
        .iter()
        .filter(|(index, _)| *index > 0)
        .map(|(index, name)| {
            let mut voxels = 0;
            let mut range: Option<[usize; 2]> = None;
            for (k, plane) in labels.chunks(n.max(1)).enumerate() {
                let c = plane.iter().filter(|&&l| l == *index).count();
                if c > 0 {
                    voxels += c;
                    range = Some(range.map_or([k, k], |r| [r[0], k]));
                }
            }
            Finding {
                label: *index,
                name: name.clone(),
                voxels,
                volume_ml: voxels as f64 * voxel_ml,
                slice_range: range,
                mean_confidence: confidence(*index),
                decision: Decision::Pending,
                note: String::new(),
            }
        })
        .collect()
}

impl Review {
    /// Brings measured findings in while keeping the reader's decisions and notes.
    pub fn update_findings(&mut self, measured: Vec<Finding>) {
        let old = std::mem::take(&mut self.findings);
        self.findings = measured
            .into_iter()
            .map(|mut f| {
                if let Some(o) = old.iter().find(|o| o.label == f.label) {
                    f.decision = o.decision;
                    f.note = o.note.clone();
                }
                f
            })
            .collect();
    }

    pub fn load(dir: &Path) -> std::io::Result<Option<Review>> {
        let path = dir.join(REVIEW_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        crate::outdir::write_atomic(&dir.join(REVIEW_FILE), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_measure_length_area_and_the_pixels_inside() {
        // 0.5 × 2 mm pixels: a line 6 columns and 2 rows long is sqrt(3² + 4²) = 5 mm.
        let line = Shape::Line { from: [1.0, 1.0], to: [7.0, 3.0] };
        let s = measure_shape(&line, [0.5, 2.0], [10, 10], &[0.0; 100], None);
        assert!((s.length_mm.unwrap() - 5.0).abs() < 1e-9);
        // A 20 × 20 image whose value is the column index; an ellipse of radii 4 and 2 pixels
        // centred on the middle of column 10 holds values symmetric about 10.
        let image: Vec<f32> = (0..400).map(|k| (k % 20) as f32).collect();
        let heat = vec![0.25f32; 400];
        let e = Shape::Ellipse { center: [10.5, 10.0], radii: [4.0, 2.0] };
        let s = measure_shape(&e, [1.0, 1.5], [20, 20], &image, Some(("attention", &heat)));
        assert!((s.area_mm2.unwrap() - std::f64::consts::PI * 4.0 * 3.0).abs() < 1e-9);
        assert!((s.mean.unwrap() - 10.0).abs() < 1e-9, "{s:?}");
        assert!(s.sd.unwrap() > 1.0 && s.sd.unwrap() < 3.0, "{s:?}");
        assert_eq!((s.heat_mean, s.heat_sd), (Some(0.25), Some(0.0)));
        // Pixel centres inside: about the ellipse's area in pixels (π · 4 · 2 ≈ 25).
        assert!((20..=30).contains(&s.pixels), "{}", s.pixels);
        // Off the image: nothing inside, no statistics, no panic.
        let off = Shape::Ellipse { center: [-50.0, -50.0], radii: [3.0, 3.0] };
        let s = measure_shape(&off, [1.0, 1.0], [20, 20], &image, None);
        assert_eq!((s.pixels, s.mean), (0, None));
        let stats = measure_shape(&e, [1.0, 1.0], [20, 20], &image, Some(("attention", &heat)));
        let text = Measurement {
            slice: 4,
            shape: e,
            stats,
            plane: None,
        }
        .describe(" HU");
        // A freehand square of 6 × 4 pixels (drawn as a path) at 2 × 1 mm: 48 mm², 24 pixels.
        let square = Shape::Polygon { points: vec![[2.0, 3.0], [8.0, 3.0], [8.0, 7.0], [5.0, 7.0], [2.0, 7.0]] };
        let s = measure_shape(&square, [2.0, 1.0], [20, 20], &image, None);
        assert_eq!((s.area_mm2, s.pixels), (Some(48.0), 24));
        assert!((s.mean.unwrap() - 4.5).abs() < 1e-9, "{s:?}");
        // A concave L: the notch is outside.
        let l = Shape::Polygon { points: vec![[0.0, 0.0], [4.0, 0.0], [4.0, 2.0], [2.0, 2.0], [2.0, 4.0], [0.0, 4.0]] };
        let s = measure_shape(&l, [1.0, 1.0], [20, 20], &image, None);
        assert_eq!((s.area_mm2, s.pixels), (Some(12.0), 12));
        assert!(text.starts_with("slice 5: ellipse 25 mm²") && text.contains("HU") && text.contains("attention 0.250"), "{text}");
    }

    #[test]
    fn outlines_follow_their_shapes() {
        let line = Shape::Line { from: [0.0, 0.0], to: [10.0, 0.0] }.outline(0.5);
        assert_eq!((line.first(), line.last()), (Some(&[0.0, 0.0]), Some(&[10.0, 0.0])));
        assert!(line.windows(2).all(|w| (w[1][0] - w[0][0]).abs() <= 0.5 + 1e-9));
        let e = Shape::Ellipse { center: [5.0, 5.0], radii: [4.0, 2.0] }.outline(0.25);
        assert!(e.iter().all(|p| (((p[0] - 5.0) / 4.0).powi(2) + ((p[1] - 5.0) / 2.0).powi(2) - 1.0).abs() < 1e-9));
        let tri = Shape::Polygon { points: vec![[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]] }.outline(1.0);
        assert_eq!(tri.last(), Some(&[0.0, 0.0]), "closed");
        // The hypotenuse's midpoint is within half a step of an outline point.
        assert!(tri.iter().any(|p| (p[0] - 2.0).hypot(p[1] - 1.5) <= 0.5), "{tri:?}");
    }

    #[test]
    fn reviews_saved_before_measurements_still_load() {
        let old = r#"{"findings":[],"key_images":[],"impression":"","reader":"","signed_at":null,"edited":false}"#;
        let r: Review = serde_json::from_str(old).expect("old review");
        assert!(r.measurements.is_empty());
    }

    #[test]
    fn findings_measure_volume_and_range_and_keep_decisions() {
        // 2 slices of 4 voxels; label 1 on slice 1 only, label 2 on both.
        let labels = [0, 1, 2, 0, 2, 2, 0, 0];
        let names = vec![(0, "bg".to_string()), (1, "a".to_string()), (2, "b".to_string())];
        let f = measure(&labels, 4, 0.5, &names, &|_| Some(0.9));
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].voxels, f[0].slice_range), (1, Some([0, 0])));
        assert_eq!((f[1].voxels, f[1].volume_ml, f[1].slice_range), (3, 1.5, Some([0, 1])));
        let mut review = Review::default();
        review.update_findings(f.clone());
        review.findings[1].decision = Decision::Rejected;
        review.findings[1].note = "over-segmented".into();
        review.update_findings(f);
        assert_eq!(review.findings[1].decision, Decision::Rejected);
        assert_eq!(review.findings[1].note, "over-segmented");
    }
}
