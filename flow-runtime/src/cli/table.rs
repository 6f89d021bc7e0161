//! Plain-text tables, sizes and durations for the inspecting commands.

use std::time::{Duration, SystemTime};

use super::terminal::escape_controls;

/// Left-aligned columns separated by two spaces; columns empty in every row are left out, and no
/// line ends in spaces. Cells come from the datastore: their control characters are shown as
/// escapes (see [`escape_controls`]), which also keeps the columns aligned.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| escape_controls(cell).into_owned())
                .collect()
        })
        .collect();
    let keep: Vec<usize> = (0..headers.len())
        .filter(|&c| rows.iter().any(|r| r.get(c).is_some_and(|v| !v.is_empty())))
        .collect();
    let widths: Vec<usize> = keep
        .iter()
        .map(|&c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|v| v.chars().count())
                .chain([headers[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            if i + 1 < cells.len() {
                text.extend(std::iter::repeat_n(
                    ' ',
                    widths[i].saturating_sub(cell.chars().count()),
                ));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(keep.iter().map(|&c| headers[c]).collect());
    for row in &rows {
        line(
            keep.iter()
                .map(|&c| row.get(c).map_or("", String::as_str))
                .collect(),
        );
    }
    out
}

/// A byte count for people: `812 B`, `3.4 KiB`, `1.2 GiB`.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration for people: `85ms`, `4.2s`, `3m07s`, `2h05m`.
pub(crate) fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else if ms < 3_600_000 {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        let m = d.as_secs() / 60;
        format!("{}h{:02}m", m / 60, m % 60)
    }
}

/// The time between two RFC 3339 timestamps of a record, if both parse.
pub(crate) fn between(started: &str, finished: Option<&str>) -> Option<Duration> {
    let start = humantime::parse_rfc3339_weak(started).ok()?;
    let end = match finished {
        Some(f) => humantime::parse_rfc3339_weak(f).ok()?,
        None => return None,
    };
    end.duration_since(start).ok()
}

/// How long ago `started` was, for runs still running.
pub(crate) fn since(started: &str) -> Option<Duration> {
    let start = humantime::parse_rfc3339_weak(started).ok()?;
    SystemTime::now().duration_since(start).ok()
}

/// A stored timestamp without its milliseconds: `2026-11-27T02:13:28Z`.
pub(crate) fn short_time(stamp: &str) -> String {
    match humantime::parse_rfc3339_weak(stamp) {
        Ok(t) => humantime::format_rfc3339_seconds(t).to_string(),
        Err(_) => stamp.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_drop_empty_columns() {
        let rows = vec![
            vec!["a".to_owned(), String::new(), "x".to_owned()],
            vec!["long".to_owned(), String::new(), String::new()],
        ];
        assert_eq!(
            table(&["ID", "EMPTY", "V"], &rows),
            "ID    V\na     x\nlong\n"
        );
    }

    #[test]
    fn cells_show_control_characters_and_stay_aligned() {
        let rows = vec![
            vec!["a\x1b[2J".to_owned(), "x".to_owned()],
            vec!["b".to_owned(), "y\u{9b}".to_owned()],
        ];
        assert_eq!(
            table(&["ID", "V"], &rows),
            "ID        V\na\\x1b[2J  x\nb         y\\u{9b}\n"
        );
    }

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(human_size(812), "812 B");
        assert_eq!(human_size(3 * 1024 + 400), "3.4 KiB");
        assert_eq!(human_size(5 << 30), "5.0 GiB");
        assert_eq!(human_duration(Duration::from_millis(85)), "85ms");
        assert_eq!(human_duration(Duration::from_millis(4200)), "4.2s");
        assert_eq!(human_duration(Duration::from_secs(187)), "3m07s");
        assert_eq!(human_duration(Duration::from_secs(7500)), "2h05m");
        assert_eq!(
            between("2026-11-27T02:13:28.123Z", Some("2026-11-27T02:13:29.623Z")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(between("garbage", Some("2026-11-27T02:13:29Z")), None);
        assert_eq!(
            short_time("2026-11-27T02:13:28.123Z"),
            "2026-11-27T02:13:28Z"
        );
    }
}
