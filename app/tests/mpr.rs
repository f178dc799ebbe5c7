//! The reformatted views in the window (egui_kittest through wgpu on lavapipe): an oblique
//! series of the real sample head, analysed by the real model, shown in 1×3 and 2×2 with its
//! overlays; clicks through the mouse link the crosshair point across the three planes.

mod common;
#[path = "common/window.rs"]
mod window;

use std::path::{Path, PathBuf};

use eframe::egui;
use egui_kittest::Harness;
use focal::study::geometry::{Vec3, dot};
use focal::ui::Layout;
use focal::ui::mpr::ViewKind;
use focal::ui::{Command, Edit, FocalApp, SettingChange, ViewChange};
use window::{drag, harness, snapshot, step_until};

/// The oblique copy of the sample head (make_oblique_series.py) and the geometry the script
/// wrote into its files, as the script computed it (not as Focal reads it back).
struct Oblique {
    dir: PathBuf,
    origin: Vec3,
    axes: [Vec3; 3],
    spacing: Vec3,
}

fn make_oblique(dir: &Path) -> Oblique {
    let (out, g) = common::make_oblique_series(dir);
    let v = |k: &str| -> Vec3 {
        let a = g[k].as_array().expect(k);
        std::array::from_fn(|i| a[i].as_f64().expect("number"))
    };
    Oblique {
        dir: out,
        origin: v("origin"),
        axes: [v("row"), v("column"), v("normal")],
        spacing: v("spacing"),
    }
}

impl Oblique {
    /// Voxel index of a patient point, solved from the script's geometry (the axes are orthonormal).
    fn voxel(&self, p: &Vec3) -> Vec3 {
        let d = [p[0] - self.origin[0], p[1] - self.origin[1], p[2] - self.origin[2]];
        std::array::from_fn(|a| dot(&d, &self.axes[a]) / self.spacing[a])
    }

    /// Distance in voxels between two patient points.
    fn voxels_apart(&self, a: &Vec3, b: &Vec3) -> f64 {
        let (va, vb) = (self.voxel(a), self.voxel(b));
        (0..3).map(|k| (va[k] - vb[k]).abs()).fold(0.0, f64::max)
    }
}

fn click(h: &mut Harness<'_, FocalApp>, at: egui::Pos2) {
    h.hover_at(at);
    h.run_steps(1);
    h.drag_at(at);
    h.run_steps(1);
    h.drop_at(at);
    h.run_steps(2);
}

fn view_rect(app: &FocalApp, kind: ViewKind) -> egui::Rect {
    app.mpr_views
        .iter()
        .find(|(_, k)| *k == kind)
        .map(|(r, _)| *r)
        .unwrap_or_else(|| panic!("{kind:?} is not on screen: {:?}", app.mpr_views))
}

#[test]
fn an_oblique_series_in_three_planes_links_the_crosshair() {
    use focal::study::reformat::Plane;
    let data = tempfile::tempdir().expect("tmp");
    let oblique = make_oblique(data.path());
    let mut h = harness(&data.path().join("analyses"));
    let ctx = h.ctx.clone();
    h.state_mut().apply(&ctx, Command::Open(vec![oblique.dir.clone()]));
    step_until(&mut h, "the oblique series to load", |app| {
        app.scan.is_none() && app.doc.current().is_some_and(|c| c.volume.is_some())
    });
    // Focal reads the tilt from the files as the script wrote it.
    {
        let g = h.state().doc.current().and_then(|c| c.stack.geometry.clone()).expect("geometry");
        for (a, axis) in [g.row_direction, g.column_direction, g.slice_direction].iter().enumerate() {
            assert!((dot(axis, &oblique.axes[a]) - 1.0).abs() < 1e-4, "axis {a}: {axis:?}");
        }
    }
    h.state_mut().apply(&ctx, Command::RunAnalysis);
    step_until(&mut h, "the analysis", |app| app.running.is_none() && app.doc.analysis().is_some());
    h.state_mut().notices.clear();
    h.state_mut().edit(Edit::Timing("84 slices in 4.0 s (21.0 slices/s)".into()));
    h.state_mut().edit(SettingChange::MaskMode(focal::render::MaskMode::Outline));
    // L cycles 1×1 → 1×3.
    h.key_press(egui::Key::L);
    h.run_steps(3);
    assert_eq!(h.state().doc.settings().layout, Layout::Three);

    // A click in the axial view sets the crosshair point there...
    let axial = view_rect(h.state(), ViewKind::Plane(Plane::Axial));
    let target = axial.center() + egui::Vec2::new(-25.0, 30.0);
    let expected = {
        let app = h.state_mut();
        focal::ui::mpr::point_at(app, axial, ViewKind::Plane(Plane::Axial), target).expect("a point")
    };
    click(&mut h, target);
    let clicked = h.state().doc.view().cursor.expect("the crosshair point");
    assert!(oblique.voxels_apart(&clicked, &expected) < 0.5, "{clicked:?} vs {expected:?}");
    // ...inside the stack, away from the axial plane the click began on only in-plane.
    let v = oblique.voxel(&clicked);
    for a in 0..3 {
        assert!(v[a] > 0.0 && v[a] < [200.0, 230.0, 84.0][a], "voxel {v:?} outside the stack");
    }

    // ...and the coronal and sagittal views now pass through it: clicking where each draws the
    // crosshair lands on the same patient point, within half a voxel.
    for plane in [Plane::Coronal, Plane::Sagittal] {
        let kind = ViewKind::Plane(plane);
        let rect = view_rect(h.state(), kind);
        let depth = dot(&clicked, &plane.axes()[2]);
        let shown = focal::ui::mpr::reformat(h.state_mut(), plane).expect("reformat").depth;
        assert!((shown - depth).abs() < 1e-6, "{plane:?} plane at {shown} mm, the point at {depth} mm");
        let at = focal::ui::mpr::screen_of(h.state_mut(), rect, kind, &clicked).expect("on screen");
        assert!(rect.contains(at), "{plane:?}: the crosshair {at:?} lies outside its view {rect:?}");
        click(&mut h, at);
        let again = h.state().doc.view().cursor.expect("point");
        let apart = oblique.voxels_apart(&again, &clicked);
        eprintln!("{plane:?}: clicked at the crosshair, {apart:.3} voxels from the axial click");
        assert!(apart <= 0.5, "{plane:?}: {again:?} is {apart} voxels from {clicked:?}");
    }

    // The wheel moves only the plane of the view it is over, one voxel step at a time.
    let before = h.state().doc.view().cursor.expect("point");
    let sagittal = view_rect(h.state(), ViewKind::Plane(Plane::Sagittal));
    h.hover_at(sagittal.center());
    h.run_steps(1);
    h.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Line,
        delta: egui::vec2(0.0, 3.0),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Wheel,
        modifiers: egui::Modifiers::NONE,
    });
    h.run_steps(2);
    let after = h.state().doc.view().cursor.expect("point");
    let moved = [after[0] - before[0], after[1] - before[1], after[2] - before[2]];
    assert!(moved[0] > 1.0 && moved[1].abs() < 1e-9 && moved[2].abs() < 1e-9, "{moved:?}");

    // Back to the first click.
    h.state_mut().edit(ViewChange::Cursor(clicked));
    h.run_steps(2);

    // Measuring on the planes: a ruler on the coronal view, an ellipse on the sagittal one.
    h.key_press(egui::Key::M);
    h.run_steps(1);
    let coronal = view_rect(h.state(), ViewKind::Plane(Plane::Coronal));
    let start = coronal.center() + egui::Vec2::new(-40.0, 20.0);
    drag(&mut h, start, start + egui::Vec2::new(80.0, 0.0));
    assert_eq!(h.state().doc.view().cursor, Some(clicked), "measuring does not move the crosshair");
    h.key_press(egui::Key::O);
    h.run_steps(1);
    let sagittal = view_rect(h.state(), ViewKind::Plane(Plane::Sagittal));
    let c = sagittal.center();
    drag(&mut h, c - egui::Vec2::new(30.0, 25.0), c + egui::Vec2::new(30.0, 25.0));
    h.key_press(egui::Key::N);
    h.run_steps(2);
    {
        let ppm_coronal = focal::ui::mpr::points_per_mm(h.state_mut(), coronal, ViewKind::Plane(Plane::Coronal)).expect("scale");
        let ppm_sagittal = focal::ui::mpr::points_per_mm(h.state_mut(), sagittal, ViewKind::Plane(Plane::Sagittal)).expect("scale");
        let m = &h.state().doc.analysis().expect("analysis").review.measurements;
        assert_eq!(m.len(), 2, "{m:?}");
        let ruler = &m[0];
        assert_eq!(ruler.plane.map(|p| p.plane), Some(Plane::Coronal));
        let length = ruler.stats.length_mm.expect("a distance");
        let want = 80.0 / f64::from(ppm_coronal);
        assert!((length - want).abs() < 1.0, "{length} mm for 80 points at {ppm_coronal}/mm");
        assert!(ruler.describe("").starts_with("Coronal P"), "{}", ruler.describe(""));
        let e = &m[1];
        assert_eq!(e.plane.map(|p| p.plane), Some(Plane::Sagittal));
        let want = std::f64::consts::PI * 30.0 * 25.0 / f64::from(ppm_sagittal).powi(2);
        let area = e.stats.area_mm2.expect("area");
        assert!((area / want - 1.0).abs() < 0.05, "{area} mm² for an ellipse of {want}");
        // Inside the head: real values and the attention under it.
        assert!(e.stats.pixels > 100 && e.stats.mean.is_some_and(|v| v > 20.0), "{:?}", e.stats);
        assert!(e.stats.heat_mean.is_some(), "{:?}", e.stats);
    }
    h.hover_at(egui::Pos2::new(5.0, 5.0));
    h.run_steps(3);
    snapshot(&mut h, "mpr_1x3_oblique");

    h.state_mut().edit(focal::ui::SettingChange::Layout(Layout::Four));
    h.run_steps(4);
    assert_eq!(h.state().mpr_views.len(), 4);
    snapshot(&mut h, "mpr_2x2_oblique");
}
