//! What every command runs with: where its output goes, how the binary is called, and the
//! datastore, opened for writing ([`RunStore`]) or for reading ([`Client`]).

use std::ffi::OsString;
use std::io::Write;

use clap::{ArgMatches, Command};

use super::error::CliError;
use super::{DATASTORE_ENV, DEFAULT_DATASTORE, shell_quote, terminal};
use crate::client::Client;
use crate::datastore::{DatastoreLocation, LocationError, StorageError};
use crate::executor::step_invocation::DATASTORE_FLAG;
use crate::run::{RunStore, RunStoreError};

/// Which of the output streams are terminals.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Terminals {
    pub out: bool,
    pub err: bool,
}

/// Where output goes, and how the binary is called in the commands suggested to the user.
pub(crate) struct Ctx<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    /// Whether stderr is a terminal (progress display).
    pub terminal: bool,
    /// Whether stdout is a terminal: logs are then shown with their control characters escaped,
    /// and binary output is refused.
    pub out_terminal: bool,
    /// The binary's name, as suggested commands spell it.
    pub bin: String,
    /// The datastore: an absolute path, or a bucket on S3-compatible storage.
    pub datastore: DatastoreLocation,
    /// Whether `--datastore` was on the command line, so suggested commands must repeat it.
    pub datastore_flag: bool,
    /// The binary's command as it parsed the command line, to say what is wrong with the
    /// arguments as clap would.
    pub root: &'a Command,
}

impl Ctx<'_> {
    /// Runs `f` with `out` showing every control character it is given as an escape (see
    /// [`terminal`]): for output that is all text for people, made of what the datastore holds.
    pub fn with_escaped_out<T>(
        &mut self,
        f: impl FnOnce(&mut Ctx<'_>) -> Result<T, CliError>,
    ) -> Result<T, CliError> {
        let mut escaper = terminal::ControlEscaper::new(&mut *self.out);
        let result = f(&mut Ctx {
            out: &mut escaper,
            err: &mut *self.err,
            terminal: self.terminal,
            out_terminal: self.out_terminal,
            bin: self.bin.clone(),
            datastore: self.datastore.clone(),
            datastore_flag: self.datastore_flag,
            root: self.root,
        });
        escaper.finish()?;
        result
    }

    /// A command line to suggest: the binary, `--datastore` if it was given, then `rest`.
    pub fn suggest(&self, rest: &str) -> String {
        if self.datastore_flag {
            format!(
                "{} --{DATASTORE_FLAG} {} {rest}",
                self.bin,
                shell_quote(&self.datastore.to_string())
            )
        } else {
            format!("{} {rest}", self.bin)
        }
    }

    /// Whether there may be a datastore to read: a local directory must exist; a bucket is
    /// always worth asking (opening it says whether it is there).
    pub fn has_datastore(&self) -> bool {
        match &self.datastore {
            DatastoreLocation::Local(path) => path.is_dir(),
            _ => true,
        }
    }

    /// The datastore, which must exist: reading commands never create one. On S3, existing
    /// means that the bucket is there and accepts the credentials; a prefix with nothing under
    /// it is an empty datastore, as an empty directory is.
    pub fn open_existing(&self) -> Result<RunStore, CliError> {
        if !self.has_datastore() {
            return Err(CliError::usage(format!(
                "there is no datastore at {} (run the flow first, or pass --datastore PATH or set {DATASTORE_ENV})",
                self.datastore
            )));
        }
        self.open()
    }

    /// The datastore, which must exist, opened for reading past runs.
    pub fn open_client(&self) -> Result<Client, CliError> {
        self.open_existing().map(Client::with_store)
    }

    /// The datastore, created if missing (for `run`); a bucket is never created.
    pub fn open_or_create(&self) -> Result<RunStore, CliError> {
        self.open()
    }

    fn open(&self) -> Result<RunStore, CliError> {
        RunStore::open(&self.datastore).map_err(|e| match e {
            // A missing bucket is a wrong `--datastore`, as a missing directory is.
            RunStoreError::Storage(StorageError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                CliError::usage(format!(
                    "there is no datastore at {}: {source}",
                    self.datastore
                ))
            }
            // An `s3://` location in a build without S3: a wrong program or flag.
            RunStoreError::Location(_) => CliError::usage(e.to_string()),
            other => other.into(),
        })
    }

    /// The datastore as the tasks' own processes are told it: the same location, an absolute
    /// path or the `s3://` URL (their credentials come from the environment they inherit).
    /// `flag` is the option that needs it, for the message.
    pub fn datastore_for_tasks(&self, flag: &str) -> Result<String, CliError> {
        self.datastore.to_arg().ok_or_else(|| {
            CliError::usage(format!(
                "{flag} needs a datastore path in UTF-8, not {}",
                self.datastore
            ))
        })
    }
}

/// The datastore: the flag, the environment variable, or the default; a local path is made
/// absolute, an `s3://` URL is checked (see [`DatastoreLocation::parse`]).
pub(crate) fn datastore_location(matches: &ArgMatches) -> Result<DatastoreLocation, CliError> {
    let location = match matches.get_one::<OsString>(DATASTORE_FLAG) {
        Some(location) if location.is_empty() => {
            return Err(CliError::usage(
                "the datastore path given with --datastore is empty",
            ));
        }
        Some(location) => location.clone(),
        None => std::env::var_os(DATASTORE_ENV)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| OsString::from(DEFAULT_DATASTORE)),
    };
    DatastoreLocation::from_os_str(&location).map_err(|e| match e {
        LocationError::Unresolvable { .. } => CliError::usage(e.to_string()),
        e => CliError::usage(format!("bad datastore location: {e}")),
    })
}

/// The datastore exactly as given (flag, else environment): for other machines (containers),
/// not this one, so it is neither made absolute nor opened.
pub(crate) fn datastore_as_given(matches: &ArgMatches) -> Option<String> {
    let flag = matches
        .try_get_raw(DATASTORE_FLAG)
        .ok()
        .flatten()
        .and_then(|mut values| values.next())
        .map(|v| v.to_string_lossy().into_owned());
    flag.or_else(|| {
        std::env::var_os(DATASTORE_ENV).map(|v: OsString| v.to_string_lossy().into_owned())
    })
    .filter(|d| !d.is_empty())
}
