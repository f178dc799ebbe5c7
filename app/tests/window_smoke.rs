//! The real binary in a real window: `focal view assets/sample-study --analyze` under Xvfb,
//! screenshots taken with ImageMagick's `import` until the analysed slice shows. Checks the
//! image is drawn (many grey levels), the label outlines appear in their manifest colours and
//! the attention heatmap colours the brain. The last screenshot is kept for people to look at.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An X server of its own for one test, stopped when dropped.
struct Xvfb {
    display: u32,
    _server: Reaped,
    /// Xvfb's standard output, where it said its display number; kept open while it runs.
    _announce: std::io::BufReader<std::process::ChildStdout>,
}

impl Xvfb {
    /// Xvfb picks a free display itself and writes its number when it accepts connections
    /// (`-displayfd`): tests running at once in one process never share a server (with numbers
    /// chosen here, two tests could pick the same one and the first to finish closed the
    /// other's display).
    fn start() -> Xvfb {
        let mut xvfb = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", "1400x900x24", "-nolisten", "tcp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (apt package xvfb; scripts/setup.sh installs it)");
        let mut announce = std::io::BufReader::new(xvfb.stdout.take().expect("Xvfb's stdout"));
        let server = Reaped(xvfb);
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut announce, &mut line);
        let display: u32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("Xvfb did not say its display: {line:?}"));
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{display}"));
        let started = Instant::now();
        while !socket.exists() && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(socket.exists(), "Xvfb did not start on :{display}");
        Xvfb {
            display,
            _server: server,
            _announce: announce,
        }
    }

    /// The real binary on this display, with a fresh home, its output in `log`.
    fn focal(&self, args: &[&std::ffi::OsStr], home: &Path, log: &Path) -> Reaped {
        let log = std::fs::File::create(log).expect("log");
        let app = Command::new(env!("CARGO_BIN_EXE_focal"))
            .args(args)
            .env("DISPLAY", format!(":{}", self.display))
            .env("HOME", home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env("WAYLAND_DISPLAY", "")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("focal starts");
        Reaped(app)
    }

    /// A screenshot of the whole screen into `path`.
    fn screenshot(&self, path: &Path) -> bool {
        Command::new("import")
            .args(["-display", &format!(":{}", self.display), "-window", "root"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success())
    }
}

struct Shot {
    grey_levels: usize,
    label_pixels: Vec<(String, usize)>,
    heat_pixels: usize,
}

fn analyse(png: &Path, labels: &[(String, [u8; 3])]) -> Option<Shot> {
    let img = image::open(png).ok()?.to_rgb8();
    let mut greys = [false; 256];
    let mut counts = vec![0usize; labels.len()];
    let mut heat = 0;
    for p in img.pixels() {
        let [r, g, b] = p.0;
        // Label colours first: a label may be white.
        if let Some(k) = labels.iter().position(|(_, c)| *c == [r, g, b]) {
            counts[k] += 1;
        } else if r == g && g == b {
            greys[r as usize] = true;
        } else if r.max(g).max(b) - r.min(g).min(b) > 40 {
            heat += 1;
        }
    }
    Some(Shot {
        grey_levels: greys.iter().filter(|&&b| b).count(),
        label_pixels: labels.iter().map(|(n, _)| n.clone()).zip(counts).collect(),
        heat_pixels: heat,
    })
}

#[test]
fn window_shows_the_sample_with_overlays_under_xvfb() {
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("models/brain-tissue.json")).expect("manifest"),
    )
    .expect("json");
    let labels: Vec<(String, [u8; 3])> = manifest["labels"]
        .as_array()
        .expect("labels")
        .iter()
        .filter(|l| l["index"].as_u64() != Some(0))
        .map(|l| {
            let c: Vec<u8> = l["color"]
                .as_array()
                .expect("color")
                .iter()
                .map(|v| v.as_u64().unwrap_or(0) as u8)
                .collect();
            (l["name"].as_str().unwrap_or("?").to_string(), [c[0], c[1], c[2]])
        })
        .collect();

    let x = Xvfb::start();
    let home = tempfile::tempdir().expect("home");
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let log_path = out_dir.join("window-smoke.log");
    let mut app = x.focal(
        &["-vvv".as_ref(), "view".as_ref(), "--analyze".as_ref(), common::repo().join("assets/sample-study").as_os_str()],
        home.path(),
        &log_path,
    );
    let shot_path = out_dir.join("window-smoke.png");
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = None;
    let passed = loop {
        std::thread::sleep(Duration::from_secs(2));
        if let Ok(Some(status)) = app.0.try_wait() {
            panic!("focal exited with {status}; log in {}", log_path.display());
        }
        let ok = x.screenshot(&shot_path);
        if let Some(shot) = ok.then(|| analyse(&shot_path, &labels)).flatten() {
            let good = shot.grey_levels >= 100
                // The labels the model found on this slice (it may find no CSF on some).
                && shot.label_pixels.iter().filter(|(_, n)| *n >= 2000).count() >= 2
                && shot.heat_pixels >= 20_000;
            last = Some(shot);
            if good {
                break true;
            }
        }
        if Instant::now() > deadline {
            break false;
        }
    };
    let shot = last.expect("at least one screenshot");
    eprintln!(
        "screenshot {}: {} grey levels, label pixels {:?}, heatmap pixels {}",
        shot_path.display(),
        shot.grey_levels,
        shot.label_pixels,
        shot.heat_pixels
    );
    assert!(
        passed,
        "the window never showed the analysed slice; see {} and {}",
        shot_path.display(),
        log_path.display()
    );
    drop(app);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(!log.contains("panicked"), "focal panicked; see {}", log_path.display());
    for phi in common::SAMPLE_PHI {
        assert!(
            !log.contains(phi),
            "the window's trace log holds a patient identifier ({phi})"
        );
    }
    // The window's own log file (rotated daily under XDG_STATE_HOME/focal/logs): plain text,
    // what the session did, no identifiers.
    let logs = home.path().join("state/focal/logs");
    let files: Vec<PathBuf> = std::fs::read_dir(&logs)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert_eq!(files.len(), 1, "one log file of today in {}: {files:?}", logs.display());
    let name = files[0].file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    assert!(name.starts_with("focal.") && name.ends_with(".log"), "{name}");
    let kept = std::fs::read_to_string(&files[0]).expect("the window's log file");
    assert!(kept.contains("loading the ONNX Runtime library") && !kept.contains('\u{1b}'), "{kept}");
    for phi in common::SAMPLE_PHI {
        assert!(!kept.contains(phi), "the window's log file holds a patient identifier ({phi})");
    }
}

/// Where each view's border (exactly its plane's colour: the reference lines are blended) lies.
fn border_box(img: &image::RgbImage, colour: [u8; 3]) -> Option<[u32; 4]> {
    let mut b: Option<[u32; 4]> = None;
    let mut count = 0;
    for (x, y, p) in img.enumerate_pixels() {
        if p.0.iter().zip(colour).all(|(a, c)| a.abs_diff(c) <= 2) {
            count += 1;
            let r = b.get_or_insert([x, y, x, y]);
            *r = [r[0].min(x), r[1].min(y), r[2].max(x), r[3].max(y)];
        }
    }
    b.filter(|_| count >= 400)
}

/// Grey levels and a 32 × 32 thumbnail of the inside of a box.
fn view_content(img: &image::RgbImage, b: [u32; 4]) -> (usize, Vec<f32>) {
    let (x0, y0, x1, y1) = (b[0] + 4, b[1] + 4, b[2].saturating_sub(4), b[3].saturating_sub(4));
    let mut greys = [false; 256];
    let mut thumb = vec![0f32; 32 * 32];
    let mut counts = vec![0f32; 32 * 32];
    for y in y0..y1 {
        for x in x0..x1 {
            let [r, g, bl] = img.get_pixel(x, y).0;
            if r == g && g == bl {
                greys[r as usize] = true;
            }
            let cell = ((y - y0) * 32 / (y1 - y0)) as usize * 32 + ((x - x0) * 32 / (x1 - x0)) as usize;
            thumb[cell] += f32::from(r) + f32::from(g) + f32::from(bl);
            counts[cell] += 3.0;
        }
    }
    let thumb = thumb.iter().zip(&counts).map(|(t, c)| t / c.max(1.0)).collect();
    (greys.iter().filter(|&&g| g).count(), thumb)
}

#[test]
fn the_real_window_shows_three_planes_in_2x2() {
    // The planes' colours as ui::mpr draws their borders (axial, coronal, sagittal).
    let colours = [("axial", [230, 70, 60]), ("coronal", [90, 200, 80]), ("sagittal", [235, 210, 60])];
    let data = tempfile::tempdir().expect("tmp");
    let (oblique, _) = common::make_oblique_series(data.path());

    let x = Xvfb::start();
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let log_path = out_dir.join("window-2x2.log");
    let mut app = x.focal(
        &["view".as_ref(), "--layout".as_ref(), "2x2".as_ref(), oblique.as_os_str()],
        data.path(),
        &log_path,
    );
    let shot_path = out_dir.join("window-2x2.png");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = String::new();
    loop {
        std::thread::sleep(Duration::from_secs(2));
        if let Ok(Some(status)) = app.0.try_wait() {
            panic!("focal exited with {status}; log in {}", log_path.display());
        }
        if x.screenshot(&shot_path)
            && let Ok(img) = image::open(&shot_path).map(|i| i.to_rgb8())
        {
            let boxes: Vec<Option<[u32; 4]>> = colours.iter().map(|(_, c)| border_box(&img, *c)).collect();
            last = format!("borders {boxes:?}");
            if let [Some(a), Some(c), Some(s)] = boxes[..] {
                let views = [a, c, s].map(|b| view_content(&img, b));
                let greys: Vec<usize> = views.iter().map(|v| v.0).collect();
                let differ = |i: usize, j: usize| {
                    views[i].1.iter().zip(&views[j].1).map(|(p, q)| (p - q).abs()).sum::<f32>() / 1024.0
                };
                let d = [differ(0, 1), differ(0, 2), differ(1, 2)];
                last = format!("borders {boxes:?}, grey levels {greys:?}, mean differences {d:?}");
                // Three views of one size side by side, each a head in many grey levels, and no two
                // alike (the same plane twice would differ by nothing).
                let same_size = a[2] - a[0] == c[2] - c[0] && a[3] - a[1] == s[3] - s[1];
                if same_size && greys.iter().all(|&g| g >= 60) && d.iter().all(|&v| v > 8.0) {
                    break;
                }
            }
        }
        assert!(Instant::now() < deadline, "the 2x2 layout never showed three planes ({last}); see {}", shot_path.display());
    }
    eprintln!("{} : {last}", shot_path.display());
    drop(app);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(!log.contains("panicked"), "focal panicked; see {}", log_path.display());
}

/// The window's own frame benchmark in 2×2 on a real window: while the axial plane steps every
/// frame, that view is drawn directly and the other three are copied from their kept pictures
/// (only their reference lines move); once nothing changes, the axial view's picture is drawn
/// once and every view is copied from then on.
#[test]
fn a_still_window_copies_its_views_and_a_step_redraws_one() {
    let data = tempfile::tempdir().expect("tmp");
    let (oblique, _) = common::make_oblique_series(data.path());
    let x = Xvfb::start();
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let log_path = out_dir.join("window-frames.log");
    let json = data.path().join("frames.json");
    let frames = 20u64;
    let mut app = x.focal(
        &[
            "view".as_ref(),
            "--layout".as_ref(),
            "2x2".as_ref(),
            "--bench-frames".as_ref(),
            frames.to_string().as_ref(),
            "--bench-out".as_ref(),
            json.as_os_str(),
            oblique.as_os_str(),
        ],
        data.path(),
        &log_path,
    );
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Ok(Some(status)) = app.0.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "the benchmark did not finish; log in {}", log_path.display());
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(status.success(), "focal exited with {status}; log in {}", log_path.display());
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the benchmark wrote its JSON")).expect("JSON");
    eprintln!("{r}");
    let count = |phase: &str, what: &str| r[phase][what].as_u64().unwrap_or_else(|| panic!("{phase}.{what} in {r}"));
    // Four views a frame; a step changes the axial plane (and so its picture) every frame.
    assert_eq!(count("views_changing", "direct"), frames, "the stepping view is drawn directly");
    assert_eq!(count("views_changing", "copied"), 3 * frames, "the other three are copied");
    assert_eq!(count("views_changing", "drawn"), 0, "no picture is kept while it changes");
    assert_eq!(count("views_still", "drawn"), 1, "the axial picture is kept once it holds still");
    assert_eq!(count("views_still", "copied"), 4 * frames, "then every view is a copy");
    assert_eq!(count("views_still", "direct"), 0);
}
