//! What a request can fail with, and the response each failure gets.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use flow_runtime::client::ClientError;

/// Why a page cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The request names something that cannot be in a datastore (`..`, a `/` in a segment),
    /// or has a malformed parameter: 400.
    #[error("{0}")]
    BadRequest(String),
    /// The request names something the datastore does not have: 404.
    #[error("{0}")]
    NotFound(String),
    /// The datastore could not be read: 500.
    #[error("{0}")]
    Internal(String),
}

impl UiError {
    /// The HTTP status of this failure.
    pub fn status(&self) -> StatusCode {
        match self {
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::NotFound(_) => StatusCode::NOT_FOUND,
            UiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<ClientError> for UiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::NoDatastore { .. }
            | ClientError::NoRuns { .. }
            | ClientError::NoSuchRun { .. }
            | ClientError::NoSuchStep { .. }
            | ClientError::NoSuchTask { .. }
            | ClientError::NoTasks { .. }
            | ClientError::NoSuchArtifact { .. }
            | ClientError::Incomplete { .. } => UiError::NotFound(e.to_string()),
            other => UiError::Internal(other.to_string()),
        }
    }
}

impl From<askama::Error> for UiError {
    fn from(e: askama::Error) -> Self {
        UiError::Internal(format!("the page could not be rendered: {e}"))
    }
}

impl IntoResponse for UiError {
    /// The message as plain text: nothing in it is read as markup.
    fn into_response(self) -> Response {
        if let UiError::Internal(message) = &self {
            tracing::warn!(%message, "request failed");
        }
        (
            self.status(),
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}: {self}\n", self.status()),
        )
            .into_response()
    }
}
