//! The window under a Wayland compositor: Weston's headless backend (pixman renderer, desktop
//! shell, its screenshot protocol on with --debug) on a socket of its own, `focal view` on the
//! sample with no X display at all (a plain background, so that only Focal's window can show
//! grey levels), screenshots taken with weston-screenshooter until the
//! slice shows. The last screenshot is kept for people to look at.

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

/// Grey levels in the middle of a screenshot (the slice view), or 0 when it cannot be read.
fn grey_levels(png: &Path) -> usize {
    let Ok(img) = image::open(png) else { return 0 };
    let img = img.to_rgb8();
    let (w, h) = img.dimensions();
    let mut seen = std::collections::HashSet::new();
    for y in h / 4..3 * h / 4 {
        for x in w / 3..2 * w / 3 {
            let p = img.get_pixel(x, y).0;
            if p[0] == p[1] && p[1] == p[2] {
                seen.insert(p[0]);
            }
        }
    }
    seen.len()
}

#[test]
fn the_window_runs_under_a_wayland_compositor() {
    let run = tempfile::tempdir().expect("runtime dir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(run.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    let socket = format!("focal-test-{}", std::process::id());
    // A plain background: only Focal's window can put grey levels on the screen.
    let config = run.path().join("weston.ini");
    std::fs::write(&config, "[shell]\nbackground-color=0xff204060\npanel-position=none\n").expect("weston.ini");
    let shots = run.path().join("shots");
    std::fs::create_dir_all(&shots).expect("mkdir");
    let _weston = Reaped(
        Command::new("weston")
            .args([
                "--backend=headless-backend.so",
                "--use-pixman",
                "--width=1400",
                "--height=900",
                "--shell=desktop-shell.so",
                "--debug",
                &format!("--config={}", config.display()),
                &format!("--socket={socket}"),
            ])
            .env("XDG_RUNTIME_DIR", run.path())
            .env_remove("DISPLAY")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("weston (apt package weston; scripts/setup.sh installs it)"),
    );
    let started = Instant::now();
    while !run.path().join(&socket).exists() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(run.path().join(&socket).exists(), "weston did not open its socket");

    let home = run.path().join("home");
    let log = std::fs::File::create(run.path().join("focal.log")).expect("log");
    let mut focal = Reaped(
        Command::new(env!("CARGO_BIN_EXE_focal"))
            .args(["view", common::repo().join("assets/sample-study").to_str().expect("path")])
            .env_remove("DISPLAY")
            .env("WAYLAND_DISPLAY", &socket)
            .env("XDG_RUNTIME_DIR", run.path())
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_STATE_HOME", home.join("state"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("focal starts"),
    );
    let kept = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wayland.png");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut best = 0;
    while Instant::now() < deadline && best < 100 {
        std::thread::sleep(Duration::from_secs(2));
        if let Ok(Some(status)) = focal.0.try_wait() {
            let log = std::fs::read_to_string(run.path().join("focal.log")).unwrap_or_default();
            panic!("focal exited with {status} under Wayland:\n{log}");
        }
        for f in std::fs::read_dir(&shots).expect("shots").flatten() {
            let _ = std::fs::remove_file(f.path());
        }
        let _ = Command::new("weston-screenshooter")
            .current_dir(&shots)
            .env("WAYLAND_DISPLAY", &socket)
            .env("XDG_RUNTIME_DIR", run.path())
            .output();
        if let Some(shot) = std::fs::read_dir(&shots).expect("shots").flatten().map(|e| e.path()).next() {
            let levels = grey_levels(&shot);
            if levels > best {
                best = levels;
                let _ = std::fs::copy(&shot, &kept);
            }
        }
    }
    let log = std::fs::read_to_string(run.path().join("focal.log")).unwrap_or_default();
    assert!(best >= 100, "the slice never showed under Wayland ({best} grey levels; see {}):\n{log}", kept.display());
    assert!(!log.contains("panicked"), "{log}");
}
