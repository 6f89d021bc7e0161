//! A task's logs as a page shows them: the first and the last 64 KiB of each, however long it is,
//! read as a stream (never held whole).

use std::io::{self, Read};

use flow_runtime::client::{ClientError, LogStream, OutputStream, TaskEntry};

use crate::views::LogView;

/// How much of the start and of the end of a log is shown.
pub(crate) const LOG_EDGE: usize = 64 << 10;

/// Every log of `task`: each attempt's, then what its process printed.
pub(crate) fn task_logs(task: &TaskEntry) -> Result<Vec<LogView>, ClientError> {
    let logs = task.logs()?;
    let mut views = Vec::new();
    for n in logs.attempts() {
        if let Some(stream) = logs.attempt(n)? {
            views.push(view(format!("attempt {n}"), stream));
        }
    }
    for stream in OutputStream::ALL {
        if let Some(output) = logs.output(stream)? {
            views.push(view(stream.name().to_owned(), output));
        }
    }
    Ok(views)
}

fn view(title: String, stream: LogStream) -> LogView {
    match head_and_tail(stream.reader, LOG_EDGE) {
        Ok(edges) => LogView {
            title,
            head: edges.head,
            omitted: edges.omitted,
            tail: edges.tail,
        },
        Err(e) => LogView {
            title,
            head: format!("cannot read {}: {e}", stream.location),
            omitted: 0,
            tail: String::new(),
        },
    }
}

/// The start and the end of a stream.
#[derive(Debug, PartialEq)]
pub(crate) struct Edges {
    pub head: String,
    /// Bytes between them that are not shown.
    pub omitted: u64,
    pub tail: String,
}

/// The first `edge` bytes of `reader` and the last `edge` after them, holding at most `3 * edge`
/// bytes at any time.
pub(crate) fn head_and_tail(mut reader: impl Read, edge: usize) -> io::Result<Edges> {
    let mut head = Vec::new();
    (&mut reader)
        .take(u64::try_from(edge).unwrap_or(u64::MAX))
        .read_to_end(&mut head)?;
    let mut tail = Vec::new();
    let mut omitted = 0u64;
    let mut chunk = vec![0; edge.clamp(1, 64 << 10)];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        tail.extend_from_slice(&chunk[..n]);
        if tail.len() > 2 * edge {
            let cut = tail.len() - edge;
            omitted += cut as u64;
            tail.drain(..cut);
        }
    }
    if tail.len() > edge {
        let cut = tail.len() - edge;
        omitted += cut as u64;
        tail.drain(..cut);
    }
    Ok(Edges {
        head: String::from_utf8_lossy(&head).into_owned(),
        omitted,
        tail: String::from_utf8_lossy(&tail).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_log_is_shown_whole() {
        let edges = head_and_tail(&b"hello"[..], 8).expect("reads");
        assert_eq!(edges.head, "hello");
        assert_eq!((edges.omitted, edges.tail.as_str()), (0, ""));
    }

    #[test]
    fn a_long_log_keeps_its_start_and_its_end() {
        let text: String = (0..1000).map(|i| format!("{i:04}")).collect();
        let edges = head_and_tail(text.as_bytes(), 8).expect("reads");
        assert_eq!(edges.head, "00000001");
        assert_eq!(edges.tail, "09980999");
        assert_eq!(edges.omitted, 4000 - 16);
        let just_over = head_and_tail(&text.as_bytes()[..12], 8).expect("reads");
        assert_eq!(
            (just_over.head.as_str(), just_over.omitted),
            ("00000001", 0)
        );
        assert_eq!(just_over.tail, "0002");
    }
}
