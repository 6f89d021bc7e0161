//! An artifact's value printed by `dump`: a preview, the whole value as JSON, or its stored
//! MessagePack bytes; each streamed from the artifact's checked blob, so that a 1 GiB value
//! costs what its output costs, never 1 GiB of memory.

use std::io::{BufReader, BufWriter, Read, Write};

use super::context::Ctx;
use super::error::CliError;
use super::table::human_size;
use super::terminal::EscapingFormatter;
use crate::client::value::{
    Limits, MsgStream, MsgpackError, RenderError, preview, short_type_name, write_json,
};
use crate::client::{CheckedBlob, TaskEntry};
use crate::datastore::ArtifactEntry;

/// How much output is gathered before it is written: large values go out in pieces this size.
pub(crate) const OUTPUT_BUFFER: usize = 1 << 20;

/// How much of a blob is read at a time.
pub(crate) const READ_BUFFER: usize = 64 << 10;

/// Prints a preview of the value: its first elements, characters and bytes, whatever its size,
/// and on stderr whether it was cut.
pub(crate) fn write_preview(
    ctx: &mut Ctx<'_>,
    task: &TaskEntry,
    entry: &ArtifactEntry,
) -> Result<(), CliError> {
    // One pass: the preview reads what it shows, the check reads the rest; nothing is printed
    // before the whole blob is checked (damage also explains a value that does not decode).
    let mut blob = task.open_artifact(entry)?;
    let previewed = preview(
        &mut MsgStream::new(BufReader::with_capacity(READ_BUFFER, &mut blob)),
        Limits::default(),
    );
    blob.finish()?;
    let shown = previewed.map_err(|e| bad_value(&blob, &e))?;
    writeln!(
        ctx.out,
        "{}: {} ({})",
        entry.name,
        short_type_name(&entry.type_name),
        human_size(entry.size)
    )?;
    writeln!(ctx.out, "{}", shown.text)?;
    if shown.cut {
        writeln!(
            ctx.err,
            "(a preview; --json prints the whole value, --raw its MessagePack bytes)"
        )?;
    }
    Ok(())
}

/// Prints the whole value as one line of JSON, after checking its whole blob.
pub(crate) fn write_json_value(
    ctx: &mut Ctx<'_>,
    task: &TaskEntry,
    entry: &ArtifactEntry,
) -> Result<(), CliError> {
    task.verify_artifact(entry)?;
    let mut out = BufWriter::with_capacity(OUTPUT_BUFFER, &mut *ctx.out);
    stream_json(task, entry, &mut out, &mut EscapingFormatter::default())?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Writes an artifact's value as JSON, streamed from its blob, which is checked again on the way.
pub(crate) fn stream_json(
    task: &TaskEntry,
    entry: &ArtifactEntry,
    out: &mut dyn Write,
    fmt: &mut EscapingFormatter,
) -> Result<(), CliError> {
    let mut blob = task.open_artifact(entry)?;
    let written = write_json(
        &mut MsgStream::new(BufReader::with_capacity(READ_BUFFER, &mut blob)),
        out,
        fmt,
    );
    match written {
        Ok(()) => Ok(blob.finish()?),
        Err(RenderError::Output(e)) => Err(e.into()),
        Err(RenderError::Value(e)) => {
            blob.finish()?;
            Err(bad_value(&blob, &e))
        }
    }
}

/// Copies an artifact's blob to `out` as stored, after checking it, and checked again on the
/// way.
pub(crate) fn copy_raw(
    task: &TaskEntry,
    entry: &ArtifactEntry,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    task.verify_artifact(entry)?;
    let mut blob = task.open_artifact(entry)?;
    let mut chunk = vec![0; OUTPUT_BUFFER];
    loop {
        match blob.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.write_all(&chunk[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // The check names the blob and what failed.
            Err(e) => {
                blob.finish()?;
                return Err(CliError::failure(format!("cannot read the artifact: {e}")));
            }
        }
    }
    blob.finish()?;
    out.flush()?;
    Ok(())
}

/// A value that is not MessagePack as this version reads it, in an intact blob.
fn bad_value(blob: &CheckedBlob<'_>, e: &MsgpackError) -> CliError {
    CliError::failure(format!("{}: {e}", blob.context()))
}
