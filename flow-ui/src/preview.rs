//! An artifact's value as it is shown: a bounded preview, read as a stream from its checked blob
//! (the runtime's `client::value::preview`, which `dump` also uses).

use std::io::BufReader;

use flow_runtime::client::TaskEntry;
use flow_runtime::client::value::{Limits, MsgStream, preview, short_type_name};
use flow_runtime::datastore::ArtifactEntry;

use crate::views::ArtifactView;

/// Blobs up to this size are read to their end and checked against their hash before their
/// preview is shown; larger ones are shown from what the preview read, and say so.
pub(crate) const CHECKED_UP_TO: u64 = 16 << 20;

/// How much of a blob is read at a time.
const READ_BUFFER: usize = 64 << 10;

/// What a page shows of each value: less than `dump`, since a task may have many.
fn limits() -> Limits {
    Limits {
        items: 20,
        chars: 400,
        bytes: 32,
        depth: 8,
        lines: 60,
        output: 16 << 10,
    }
}

/// `bytes` for people: `812 B`, `1.5 KiB`, `3.2 MiB`.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The view of `artifact` of `task`, with `raw_href` for its download.
pub(crate) fn artifact_view(
    task: &TaskEntry,
    artifact: &ArtifactEntry,
    raw_href: String,
) -> ArtifactView {
    let (preview, note) = match preview_text(task, artifact) {
        Ok(shown) => shown,
        Err(problem) => (String::new(), problem),
    };
    ArtifactView {
        name: artifact.name.clone(),
        type_name: short_type_name(&artifact.type_name),
        size: human_size(artifact.size),
        raw_href,
        preview,
        note,
    }
}

/// The preview and a note on it (cut, not checked), or why there is none.
fn preview_text(task: &TaskEntry, artifact: &ArtifactEntry) -> Result<(String, String), String> {
    let mut blob = task.open_artifact(artifact).map_err(|e| e.to_string())?;
    let shown = preview(
        &mut MsgStream::new(BufReader::with_capacity(READ_BUFFER, &mut blob)),
        limits(),
    );
    let mut notes = Vec::new();
    if artifact.size <= CHECKED_UP_TO {
        // Damage also explains a value that does not decode: say that first.
        blob.finish().map_err(|e| e.to_string())?;
    } else {
        notes.push(format!(
            "not checked against its hash: larger than {}",
            human_size(CHECKED_UP_TO)
        ));
    }
    let shown = shown.map_err(|e| format!("the value cannot be shown: {e}"))?;
    if shown.cut {
        notes.insert(0, "shortened".to_owned());
    }
    Ok((shown.text, notes.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_in_binary_units() {
        assert_eq!(human_size(812), "812 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 20), "3.0 MiB");
    }
}
