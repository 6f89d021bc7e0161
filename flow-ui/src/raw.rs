//! `/raw/…`: an artifact's stored MessagePack bytes, streamed from its checked blob.

use std::io::{self, Read};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use flow_runtime::client::Client;
use tokio::sync::{mpsc, oneshot};

use crate::pages::existing_task;
use crate::{UiError, links};

/// How much is read and sent at a time.
const CHUNK: usize = 64 << 10;

/// `/raw/{flow}/{run}/{step}/{task}/{artifact}`: the blob's bytes as stored. They are sent as
/// they are read and checked; a blob found damaged at its end (wrong hash, wrong size) ends the
/// response with an error, so the download fails instead of completing with wrong bytes.
pub(crate) async fn artifact(
    State(client): State<Client>,
    Path((flow, run, step, task, artifact)): Path<(String, String, String, String, String)>,
) -> Result<Response, UiError> {
    let (opened_tx, opened_rx) = oneshot::channel::<Result<u64, UiError>>();
    let (chunks_tx, mut chunks_rx) = mpsc::channel::<io::Result<Vec<u8>>>(4);
    let name = artifact.clone();
    tokio::task::spawn_blocking(move || {
        let found = (|| {
            let (step, entry) = existing_task(&client, &flow, &run, &step, &task)?;
            let artifact = links::segment("artifact", &artifact)?;
            let Some(found) = entry
                .artifacts()
                .unwrap_or_default()
                .iter()
                .find(|a| a.name == artifact)
                .cloned()
            else {
                return Err(UiError::NotFound(format!(
                    "task {}/{} has no artifact `{artifact}`",
                    step.name(),
                    entry.id()
                )));
            };
            Ok((entry, found))
        })();
        let (entry, found) = match found {
            Ok(found) => found,
            Err(e) => {
                let _ = opened_tx.send(Err(e));
                return;
            }
        };
        let mut blob = match entry.open_artifact(&found) {
            Ok(blob) => blob,
            Err(e) => {
                let _ = opened_tx.send(Err(e.into()));
                return;
            }
        };
        if opened_tx.send(Ok(found.size)).is_err() {
            return;
        }
        let mut sent = 0u64;
        while sent < found.size {
            let want = usize::try_from(found.size - sent)
                .unwrap_or(usize::MAX)
                .min(CHUNK);
            let mut chunk = vec![0; want];
            match blob.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    chunk.truncate(n);
                    sent += n as u64;
                    if chunks_tx.blocking_send(Ok(chunk)).is_err() {
                        return; // the client went away
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = chunks_tx.blocking_send(Err(e));
                    return;
                }
            }
        }
        if let Err(e) = blob.finish() {
            let _ = chunks_tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
    });
    let size = opened_rx
        .await
        .map_err(|_| UiError::Internal("the artifact's reader stopped".to_owned()))??;
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| {
        chunks_rx.poll_recv(cx)
    }));
    Ok((
        [
            (header::CONTENT_TYPE, "application/msgpack".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.msgpack\"", file_name(&name)),
            ),
        ],
        body,
    )
        .into_response())
}

/// `name` with every character but ASCII letters, digits, `-`, `_` and `.` replaced by `_`: safe
/// inside a quoted header parameter.
fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
