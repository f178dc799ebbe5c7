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

fn free_display() -> u32 {
    (0..200)
        .map(|k| 100 + (std::process::id() + k) % 400)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .expect("a free X display number")
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

    let display = free_display();
    let xvfb = Command::new("Xvfb")
        .args([
            &format!(":{display}"),
            "-screen",
            "0",
            "1400x900x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb (apt package xvfb; scripts/setup.sh installs it)");
    let _xvfb = Reaped(xvfb);
    let socket = PathBuf::from(format!("/tmp/.X11-unix/X{display}"));
    let started = Instant::now();
    while !socket.exists() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(socket.exists(), "Xvfb did not start on :{display}");

    let home = tempfile::tempdir().expect("home");
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let log_path = out_dir.join("window-smoke.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let app = Command::new(env!("CARGO_BIN_EXE_focal"))
        .args(["-vvv", "view", "--analyze"])
        .arg(common::repo().join("assets/sample-study"))
        .env("DISPLAY", format!(":{display}"))
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("WAYLAND_DISPLAY", "")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("focal starts");
    let mut app = Reaped(app);

    let shot_path = out_dir.join("window-smoke.png");
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = None;
    let passed = loop {
        std::thread::sleep(Duration::from_secs(2));
        if let Ok(Some(status)) = app.0.try_wait() {
            panic!("focal exited with {status}; log in {}", log_path.display());
        }
        let ok = Command::new("import")
            .args(["-display", &format!(":{display}"), "-window", "root"])
            .arg(&shot_path)
            .status()
            .is_ok_and(|s| s.success());
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
}
