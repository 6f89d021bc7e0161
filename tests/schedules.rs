//! The schedule examples of `examples/schedules/` (README, "Schedules on Slurm"): the scrontab
//! line, and the systemd timer and service doing the same. The scrontab's command is run for
//! real on Slurm by `tests/slurm.rs` (`the_scrontab_example_runs_on_slurm`); here, that the three
//! files agree and that systemd accepts its two.

use std::path::{Path, PathBuf};
use std::process::Command;

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/schedules")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The one crontab line of the scrontab: its five schedule fields and its command.
fn scrontab_line() -> (Vec<String>, String) {
    let text = example("squares.scrontab");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(lines.len(), 1, "one crontab line: {lines:?}");
    let words: Vec<&str> = lines[0].split_whitespace().collect();
    assert!(words.len() > 5, "five fields and a command: {words:?}");
    (
        words[..5].iter().map(|w| (*w).to_owned()).collect(),
        words[5..].join(" "),
    )
}

/// The value of `key=` in a unit file.
fn unit_value(text: &str, key: &str) -> String {
    let values: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .collect();
    assert_eq!(values.len(), 1, "one {key}= line: {values:?}");
    values[0].trim().to_owned()
}

#[test]
fn the_scrontab_schedule_is_a_valid_cron_line() {
    let (fields, command) = scrontab_line();
    blooming_flowers::argo::check_schedule(&fields.join(" ")).expect("five valid cron fields");
    assert!(
        command.contains(" run --slurm"),
        "the scrontab starts a Slurm run: {command}"
    );
}

#[test]
fn the_timer_fires_when_the_scrontab_does_and_starts_the_same_command() {
    let (fields, command) = scrontab_line();
    // `M H * * *` is every day at H:M, which systemd writes `*-*-* HH:MM:00`.
    let [minute, hour, rest @ ..] = fields.as_slice() else {
        unreachable!("five fields")
    };
    assert_eq!(rest, ["*", "*", "*"], "a daily schedule");
    let (minute, hour): (u32, u32) = (
        minute.parse().expect("a minute"),
        hour.parse().expect("an hour"),
    );
    let timer = example("squares-nightly.timer");
    assert_eq!(
        unit_value(&timer, "OnCalendar"),
        format!("*-*-* {hour:02}:{minute:02}:00")
    );
    let service = example("squares-nightly.service");
    assert_eq!(unit_value(&service, "ExecStart"), command);
}

/// `systemd-analyze verify` loads both units as systemd would, refusing an unknown key, a
/// malformed `OnCalendar` or a timer without its service. The binary in `ExecStart` must exist
/// for it, so it is swapped for this test's own executable.
#[test]
fn the_timer_and_the_service_pass_systemd_analyze_verify() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        panic!("systemd-analyze is needed to check the systemd examples (package systemd)");
    };
    assert!(version.status.success());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let exe = std::env::current_exe().expect("this test's path");
    let (_, command) = scrontab_line();
    let binary = command.split_whitespace().next().expect("a binary");
    let mut units: Vec<PathBuf> = Vec::new();
    for name in ["squares-nightly.timer", "squares-nightly.service"] {
        let text = example(name).replace(binary, &exe.to_string_lossy());
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write the unit");
        units.push(path);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .expect("systemd-analyze runs");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
