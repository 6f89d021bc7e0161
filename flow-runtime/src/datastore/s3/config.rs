//! An S3 bucket configured from the environment (the standard `AWS_*` variables, see
//! [`S3Location`]), and the check, when it is opened, that it is reachable with these
//! credentials.

use std::io;
use std::time::Duration;

use ::object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use ::object_store::list::{PaginatedListOptions, PaginatedListStore};
use ::object_store::{ClientConfigKey, Error as ObjectError, RetryConfig};

use super::errors::{Names, error_kind};
use super::store::Store;
use crate::datastore::location::S3Location;
use crate::datastore::storage::StorageError;

/// Request timeout when `AWS_TIMEOUT` is not set: object_store's 30 s default covers the whole
/// body of a request, too short for a 32 MiB part or a large `GET` on a slow link.
const DEFAULT_REQUEST_TIMEOUT: &str = "5m";

/// The clients of one S3 location.
pub(super) struct S3Clients {
    /// The client every request of the datastore goes through.
    pub(super) store: AmazonS3,
    /// The same client with a short retry budget, for the reachability check.
    pub(super) quick: AmazonS3,
    /// What messages call the datastore, its endpoint and its bucket.
    pub(super) names: Names,
}

/// The clients of `location`, configured from the environment; nothing is requested yet.
///
/// # Errors
///
/// A configuration the S3 client rejects, naming the endpoint.
pub(super) fn clients_from_env(location: &S3Location) -> Result<S3Clients, StorageError> {
    let name = location.to_string();
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(location.bucket());
    if std::env::var_os("AWS_TIMEOUT").is_none() {
        builder = builder.with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            DEFAULT_REQUEST_TIMEOUT,
        );
    }
    let endpoint = builder
        .get_config_value(&AmazonS3ConfigKey::Endpoint)
        .unwrap_or_else(|| {
            let region = builder
                .get_config_value(&AmazonS3ConfigKey::Region)
                .unwrap_or_else(|| "us-east-1".to_owned());
            format!("AWS S3 ({region})")
        });
    let config_error = |e: ObjectError| StorageError::Io {
        action: "configure the S3 client for",
        location: name.clone(),
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{e} (endpoint {endpoint}; see the AWS_* environment variables)"),
        ),
    };
    // The reachability check fails fast: a mistyped endpoint should not take the regular
    // retry budget (minutes) to be reported.
    let quick = builder
        .clone()
        .with_retry(RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(15),
            ..RetryConfig::default()
        })
        .build()
        .map_err(config_error)?;
    let store = builder.build().map_err(config_error)?;
    Ok(S3Clients {
        store,
        quick,
        names: Names {
            name,
            endpoint,
            bucket: Some(location.bucket().to_owned()),
        },
    })
}

/// Lists one entry of the datastore's top level through `quick` (the same store with a short
/// retry budget): the bucket exists and the credentials are accepted. One request, however
/// much the bucket holds.
///
/// # Errors
///
/// An unreachable endpoint; a bucket that does not exist (an [`io::ErrorKind::NotFound`]
/// inside [`StorageError::Io`]); refused credentials ([`io::ErrorKind::PermissionDenied`]).
pub(super) fn check_reachable(store: &Store, quick: &AmazonS3) -> Result<(), StorageError> {
    let root = store.root.as_ref();
    let prefix = (!root.is_empty()).then(|| format!("{root}/"));
    let options = PaginatedListOptions {
        delimiter: Some("/".into()),
        max_keys: Some(1),
        ..PaginatedListOptions::default()
    };
    let result = store.block_on(async move {
        quick
            .list_paginated(prefix.as_deref(), options)
            .await
            .map(drop)
    });
    result.map_err(|e| {
        let source = match error_kind(&e) {
            io::ErrorKind::NotFound => io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{} does not exist at {} (create it first): {e}",
                    store.names.bucket_name(),
                    store.names.endpoint
                ),
            ),
            _ => store.names.io_error(e),
        };
        StorageError::Io {
            action: "open the datastore",
            location: store.names.name.clone(),
            source,
        }
    })
}
