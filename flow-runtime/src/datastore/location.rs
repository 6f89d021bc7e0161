//! Where a datastore is: [`DatastoreLocation`], parsed from what a user gives as
//! `--datastore`, `BLOOMING_DATASTORE` or to the client.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::keys::{Key, KeyError};

/// Where a datastore is kept: a directory of the local file system, or a bucket (and an optional
/// prefix in it) on S3-compatible object storage.
///
/// Parsed from what a user types after `--datastore`, puts in `BLOOMING_DATASTORE` or passes to
/// the client (`Client::open`):
///
/// | input | location |
/// |---|---|
/// | `s3://BUCKET` or `s3://BUCKET/PREFIX/…` | [`DatastoreLocation::S3`]: objects under `PREFIX/` in `BUCKET` (needs the cargo feature `s3`) |
/// | `file:///ABSOLUTE/PATH` | [`DatastoreLocation::Local`] |
/// | anything else | [`DatastoreLocation::Local`]: a path, made absolute against the current directory |
///
/// Any other `scheme://` (`gs://`, `http://`, …) is an error rather than a strange local
/// directory name. Nothing but the bucket and prefix is taken from an `s3://` URL: the endpoint,
/// region and credentials come from the standard AWS environment variables (see [`S3Location`]),
/// so that the same location string means the same datastore to every process, and no secret
/// ends up in a command line, a suggested command or a log.
///
/// ```
/// use flow_runtime::datastore::DatastoreLocation;
///
/// let s3: DatastoreLocation = "s3://ml-runs/team-a/".parse()?;
/// let bucket = s3.as_s3().expect("an S3 location");
/// assert_eq!(bucket.bucket(), "ml-runs");
/// assert_eq!(bucket.prefix().map(|p| p.as_str()), Some("team-a"));
/// assert_eq!(s3.to_string(), "s3://ml-runs/team-a");
///
/// let local = DatastoreLocation::parse("runs/store")?;
/// assert!(local.as_local().is_some_and(|path| path.is_absolute()));
///
/// let err = DatastoreLocation::parse("gs://ml-runs").unwrap_err();
/// assert!(err.to_string().contains("not supported"));
/// # Ok::<(), flow_runtime::datastore::LocationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatastoreLocation {
    /// A directory of the local file system (or of a shared one mounted locally); always
    /// absolute, so that the location means the same after a change of directory and in child
    /// processes started elsewhere.
    Local(PathBuf),
    /// A bucket, and optionally a prefix in it, on S3-compatible object storage.
    S3(S3Location),
}

/// A datastore on S3-compatible object storage: `s3://BUCKET[/PREFIX]`.
///
/// Only the bucket and the prefix are part of the location. How to reach them is read from the
/// environment when the datastore is opened (with the cargo feature `s3`), through
/// `object_store`'s `AmazonS3Builder::from_env`, which takes every `AWS_*` variable it knows:
///
/// | variable | meaning |
/// |---|---|
/// | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) | credentials |
/// | `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`) | the server, e.g. `http://127.0.0.1:9000` for MinIO or SeaweedFS; unset means AWS |
/// | `AWS_REGION` (or `AWS_DEFAULT_REGION`) | the region; self-hosted servers mostly accept `us-east-1`, the default |
/// | `AWS_ALLOW_HTTP` | `true` to allow a plain `http://` endpoint |
/// | `AWS_VIRTUAL_HOSTED_STYLE_REQUEST` | `true` for `BUCKET.endpoint` URLs; path-style is the default, which self-hosted servers expect |
/// | `AWS_TIMEOUT`, `AWS_CONNECT_TIMEOUT` | per-request timeouts (e.g. `5m`); defaults 5 minutes and 5 seconds |
///
/// Also read: the container and web-identity credential variables, `AWS_CONDITIONAL_PUT`
/// (`disabled` for a server known to mishandle conditional writes), and object_store's other
/// client options as `AWS_<OPTION>`. Not read: `AWS_PROFILE` and `~/.aws/` files. Without
/// credentials in the environment the instance-metadata service is asked, as on an EC2 machine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct S3Location {
    bucket: String,
    prefix: Option<Key>,
}

impl S3Location {
    /// A location from its parts. The bucket is checked as in [`DatastoreLocation::parse`].
    ///
    /// # Errors
    ///
    /// A bucket name that no S3-compatible server accepts.
    pub fn new(bucket: &str, prefix: Option<Key>) -> Result<Self, LocationError> {
        check_bucket(bucket, &format!("s3://{bucket}"))?;
        Ok(S3Location {
            bucket: bucket.to_owned(),
            prefix,
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The prefix every object of the datastore is under, if any.
    pub fn prefix(&self) -> Option<&Key> {
        self.prefix.as_ref()
    }

    /// This location with `segment` appended to its prefix: a datastore of its own inside this
    /// one's prefix (what tests use to stay apart in a shared bucket).
    ///
    /// # Errors
    ///
    /// `segment` is not a valid key segment.
    pub fn join(&self, segment: &str) -> Result<Self, KeyError> {
        let prefix = match &self.prefix {
            Some(prefix) => prefix.join(segment)?,
            None => Key::segment(segment)?,
        };
        Ok(S3Location {
            bucket: self.bucket.clone(),
            prefix: Some(prefix),
        })
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}", self.bucket)?;
        if let Some(prefix) = &self.prefix {
            write!(f, "/{prefix}")?;
        }
        Ok(())
    }
}

impl DatastoreLocation {
    /// Parses a location: an `s3://` or `file://` URL, or else a local path (made absolute
    /// against the current directory).
    ///
    /// # Errors
    ///
    /// An empty string; a URL of another scheme; an `s3://` URL without a bucket, with
    /// credentials, a port, a query or a fragment, or with a prefix that is not a valid key
    /// (segments of ASCII letters, digits, `.`, `_` and `-`); a relative path when the current
    /// directory cannot be found.
    pub fn parse(location: &str) -> Result<Self, LocationError> {
        if location.is_empty() {
            return Err(LocationError::Empty);
        }
        match split_scheme(location) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("s3") => {
                parse_s3(location, rest).map(DatastoreLocation::S3)
            }
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("file") => {
                // `file:///abs/path`, or `file://localhost/abs/path`.
                let path = rest.strip_prefix("localhost").unwrap_or(rest);
                if !path.starts_with('/') {
                    return Err(LocationError::FileUrl {
                        location: location.to_owned(),
                    });
                }
                Self::local(path)
            }
            Some((scheme, _)) => Err(LocationError::UnsupportedScheme {
                scheme: scheme.to_ascii_lowercase(),
                location: location.to_owned(),
            }),
            None => Self::local(location),
        }
    }

    /// Parses a location given as an OS string (a command-line argument, an environment
    /// variable): as [`DatastoreLocation::parse`] when it is UTF-8, else a local path, since
    /// URLs are always UTF-8.
    ///
    /// # Errors
    ///
    /// As [`DatastoreLocation::parse`].
    pub fn from_os_str(location: &OsStr) -> Result<Self, LocationError> {
        match location.to_str() {
            Some(text) => Self::parse(text),
            None => Self::local(location),
        }
    }

    /// A local directory, made absolute against the current directory; never read as a URL.
    ///
    /// # Errors
    ///
    /// An empty path, or a relative one when the current directory cannot be found.
    pub fn local(path: impl AsRef<Path>) -> Result<Self, LocationError> {
        let path = path.as_ref();
        if path.as_os_str().is_empty() {
            return Err(LocationError::Empty);
        }
        std::path::absolute(path)
            .map(DatastoreLocation::Local)
            .map_err(|source| LocationError::Unresolvable {
                path: path.to_path_buf(),
                source,
            })
    }

    /// The directory, for a local datastore.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            DatastoreLocation::Local(path) => Some(path),
            DatastoreLocation::S3(_) => None,
        }
    }

    /// The bucket and prefix, for a datastore on S3-compatible storage.
    pub fn as_s3(&self) -> Option<&S3Location> {
        match self {
            DatastoreLocation::S3(s3) => Some(s3),
            DatastoreLocation::Local(_) => None,
        }
    }

    /// The location as one command-line argument that [`DatastoreLocation::parse`] reads back
    /// as the same location in another process (what process mode passes to each task); `None`
    /// for a local path that is not UTF-8.
    ///
    /// An absolute local path starts with `/` (or a drive), so it is never mistaken for a URL.
    pub fn to_arg(&self) -> Option<String> {
        match self {
            DatastoreLocation::Local(path) => path.to_str().map(str::to_owned),
            DatastoreLocation::S3(s3) => Some(s3.to_string()),
        }
    }
}

impl FromStr for DatastoreLocation {
    type Err = LocationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatastoreLocation::parse(s)
    }
}

impl From<S3Location> for DatastoreLocation {
    fn from(location: S3Location) -> Self {
        DatastoreLocation::S3(location)
    }
}

/// Shown as the user would type it: the path, or the `s3://` URL.
impl fmt::Display for DatastoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatastoreLocation::Local(path) => write!(f, "{}", path.display()),
            DatastoreLocation::S3(s3) => s3.fmt(f),
        }
    }
}

/// Why a string is not a datastore location, or a location cannot be used by this build.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocationError {
    /// Nothing was given.
    #[error("the datastore location is empty")]
    Empty,
    /// A URL of a scheme other than `s3://` and `file://`.
    #[error(
        "`{location}`: datastores on `{scheme}://` are not supported; use a local directory or s3://BUCKET[/PREFIX] (any S3-compatible storage)"
    )]
    UnsupportedScheme {
        /// The scheme, lowercased.
        scheme: String,
        /// The whole input.
        location: String,
    },
    /// `s3://` without a bucket.
    #[error("`{location}` names no bucket: write s3://BUCKET or s3://BUCKET/PREFIX")]
    NoBucket {
        /// The whole input.
        location: String,
    },
    /// A bucket name no S3-compatible server accepts.
    #[error("`{location}`: {problem}")]
    BadBucket {
        /// The whole input.
        location: String,
        /// What is wrong with the bucket name.
        problem: String,
    },
    /// `s3://user:secret@bucket`; the input is not repeated, as it holds a secret.
    #[error(
        "an s3:// datastore location cannot carry credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead"
    )]
    CredentialsInUrl,
    /// A `?query` or `#fragment`, which would otherwise silently become part of the prefix.
    #[error(
        "`{location}`: an s3:// datastore location has no query or fragment (`?`, `#`); the endpoint and options come from the AWS_* environment variables"
    )]
    QueryOrFragment {
        /// The whole input.
        location: String,
    },
    /// A prefix that is not a valid [`Key`].
    #[error("`{location}`: {source}")]
    BadPrefix {
        /// The whole input.
        location: String,
        /// What is wrong with which segment.
        #[source]
        source: KeyError,
    },
    /// `file://` followed by something other than an absolute path.
    #[error("`{location}`: a file:// URL names an absolute path, as in file:///data/runs")]
    FileUrl {
        /// The whole input.
        location: String,
    },
    /// A relative path when the current directory cannot be found.
    #[error("cannot use {} as the datastore: {source}", .path.display())]
    Unresolvable {
        /// The path given.
        path: PathBuf,
        /// Why it could not be made absolute.
        #[source]
        source: io::Error,
    },
    /// An `s3://` location in a build without the cargo feature `s3`.
    #[error(
        "the datastore {location} is on S3-compatible storage, which this program was built without: enable the cargo feature `s3` of blooming-flowers (blooming-flowers = {{ version = \"…\", features = [\"s3\"] }})"
    )]
    S3Disabled {
        /// The location, as a URL.
        location: String,
    },
}

/// `("s3", "bucket/x")` for `s3://bucket/x`: a scheme is a letter then letters, digits, `+`, `-`
/// or `.`, at least two characters (so that a Windows drive letter is not a scheme), then `://`.
fn split_scheme(location: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = location.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && scheme.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

/// `BUCKET[/PREFIX][/]`, the part of an `s3://` URL after the scheme.
fn parse_s3(location: &str, rest: &str) -> Result<S3Location, LocationError> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    // Checked before anything that repeats the input: `user:secret@bucket` must not be echoed.
    if authority.contains('@') {
        return Err(LocationError::CredentialsInUrl);
    }
    if rest.contains(['?', '#']) {
        return Err(LocationError::QueryOrFragment {
            location: location.to_owned(),
        });
    }
    if authority.is_empty() {
        return Err(LocationError::NoBucket {
            location: location.to_owned(),
        });
    }
    check_bucket(authority, location)?;
    let path = path.trim_end_matches('/');
    let prefix = if path.is_empty() {
        None
    } else {
        Some(Key::parse(path).map_err(|source| LocationError::BadPrefix {
            location: location.to_owned(),
            source: source.describing("datastore prefix"),
        })?)
    };
    Ok(S3Location {
        bucket: authority.to_owned(),
        prefix,
    })
}

/// Checks a bucket name loosely: S3's own rules (3 to 63 lowercase letters, digits, `.` and `-`)
/// are stricter than what some self-hosted servers accept (upper case, `_`), so only what no
/// server accepts, or what is surely a mistake (a port), is refused here; the server judges the
/// rest and says so when the datastore is opened.
fn check_bucket(bucket: &str, location: &str) -> Result<(), LocationError> {
    let fail = |problem: String| {
        Err(LocationError::BadBucket {
            location: location.to_owned(),
            problem,
        })
    };
    if bucket.is_empty() {
        return Err(LocationError::NoBucket {
            location: location.to_owned(),
        });
    }
    if bucket.contains(':') {
        return fail(format!(
            "`{bucket}` is not a bucket name; the server's address (with its port) goes in AWS_ENDPOINT_URL, e.g. AWS_ENDPOINT_URL=http://{bucket}"
        ));
    }
    if bucket.len() > 255 {
        return fail(format!(
            "a bucket name has at most 255 characters, this one {}",
            bucket.len()
        ));
    }
    if let Some(c) = bucket
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return fail(format!(
            "the bucket name `{bucket}` contains {c:?}; bucket names are made of letters, digits, `.`, `-` and `_`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(input: &str) -> S3Location {
        match DatastoreLocation::parse(input) {
            Ok(DatastoreLocation::S3(s3)) => s3,
            other => panic!("{input}: {other:?}"),
        }
    }

    fn error(input: &str) -> String {
        match DatastoreLocation::parse(input) {
            Err(e) => e.to_string(),
            Ok(location) => panic!("{input} parsed as {location:?}"),
        }
    }

    #[test]
    fn s3_urls() {
        let plain = s3("s3://bucket");
        assert_eq!(plain.bucket(), "bucket");
        assert_eq!(plain.prefix(), None);
        assert_eq!(plain.to_string(), "s3://bucket");
        assert_eq!(s3("s3://bucket/").prefix(), None);

        let deep = s3("S3://my.bucket-1/a/b_c/d-e.f//");
        assert_eq!(deep.bucket(), "my.bucket-1");
        assert_eq!(deep.prefix().map(Key::as_str), Some("a/b_c/d-e.f"));
        assert_eq!(deep.to_string(), "s3://my.bucket-1/a/b_c/d-e.f");
        // Display parses back to the same location: what process mode relies on.
        assert_eq!(s3(&deep.to_string()), deep);

        let joined = deep.join("test-123").unwrap();
        assert_eq!(joined.to_string(), "s3://my.bucket-1/a/b_c/d-e.f/test-123");
        assert_eq!(plain.join("x").unwrap().to_string(), "s3://bucket/x");
        assert!(plain.join("../x").is_err());
    }

    #[test]
    fn bad_s3_urls_say_why() {
        assert!(error("s3://").contains("names no bucket"));
        assert!(error("s3:///prefix").contains("names no bucket"));
        let message = error("s3://AKIA:hunter2@bucket/x");
        assert!(message.contains("AWS_ACCESS_KEY_ID"), "{message}");
        assert!(
            !message.contains("hunter2"),
            "the secret is echoed: {message}"
        );
        assert!(error("s3://bucket/x?region=eu").contains("no query"));
        assert!(error("s3://bucket#frag").contains("no query"));
        assert!(error("s3://localhost:9000/bucket").contains("AWS_ENDPOINT_URL"));
        assert!(error("s3://bu cket").contains("contains ' '"));
        let message = error("s3://bucket/a/../b");
        assert!(message.contains("datastore prefix"), "{message}");
        assert!(error("s3://bucket/a//b").contains("datastore prefix"));
        assert!(error("s3://bucket/with space").contains("datastore prefix"));
    }

    #[test]
    fn other_schemes_are_refused() {
        for input in [
            "gs://bucket",
            "az://container/x",
            "http://host/x",
            "s3a://b",
        ] {
            let message = error(input);
            assert!(message.contains("not supported"), "{message}");
            assert!(message.contains("s3://BUCKET"), "{message}");
        }
        assert!(error("").contains("empty"));
        assert!(error("file://relative/x").contains("absolute path"));
    }

    #[test]
    fn local_paths_are_made_absolute() {
        let cwd = std::env::current_dir().unwrap();
        let local = DatastoreLocation::parse("some/dir").unwrap();
        assert_eq!(local.as_local(), Some(cwd.join("some/dir").as_path()));
        assert_eq!(
            local.to_arg(),
            Some(cwd.join("some/dir").display().to_string())
        );
        let absolute = DatastoreLocation::parse("/data/runs").unwrap();
        assert_eq!(absolute.as_local(), Some(Path::new("/data/runs")));
        assert_eq!(absolute.to_string(), "/data/runs");
        // Only `scheme://` makes a URL: colons elsewhere are part of a file name.
        assert!(
            DatastoreLocation::parse("runs:2024")
                .unwrap()
                .as_local()
                .is_some()
        );
        assert!(
            DatastoreLocation::parse("s3:bucket")
                .unwrap()
                .as_local()
                .is_some()
        );
        assert_eq!(
            DatastoreLocation::parse("file:///data/runs").unwrap(),
            absolute
        );
        assert_eq!(
            DatastoreLocation::parse("file://localhost/data/runs").unwrap(),
            absolute
        );
        // An absolute path is read back as itself, never as a URL.
        let arg = absolute.to_arg().unwrap();
        assert_eq!(DatastoreLocation::parse(&arg).unwrap(), absolute);
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_paths_are_local() {
        use std::os::unix::ffi::OsStrExt;
        let raw = OsStr::from_bytes(b"/data/\xffruns");
        let location = DatastoreLocation::from_os_str(raw).unwrap();
        assert_eq!(location.as_local(), Some(Path::new(raw)));
        assert_eq!(location.to_arg(), None);
    }
}
