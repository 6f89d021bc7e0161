//! Subcommands that crates above the runtime add to every flow binary, so that a command which
//! needs more than the runtime (the web UI's `ui` and `card` need a web server and templates) is
//! still `MYFLOW ui`, without the runtime depending on what it needs.
//!
//! The facade's `main` passes them when its cargo feature `ui` is on; a binary can pass its own
//! with [`main_with`](super::main_with).

use std::io::Write;

use clap::{ArgMatches, Command};

use crate::client::Client;

/// A subcommand added to a flow binary.
#[derive(Clone, Copy)]
pub struct CommandExtension {
    /// Its `clap` definition: the name it is called by, its arguments and help. The binary's
    /// `--datastore` is added to it, as to every command.
    pub command: fn() -> Command,
    /// Runs it, once the command line has parsed.
    pub exec: fn(&mut ExtensionContext<'_>, &ArgMatches) -> Result<(), ExtensionError>,
}

impl std::fmt::Debug for CommandExtension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandExtension")
            .field("command", &(self.command)().get_name())
            .finish()
    }
}

/// What an added command runs with.
pub struct ExtensionContext<'a> {
    /// The flow the binary runs, as its graph names it.
    pub flow: &'static str,
    /// The datastore, as `--datastore` (or its environment variable, or the default) names it,
    /// for messages.
    pub datastore: String,
    /// Standard output.
    pub out: &'a mut dyn Write,
    /// Standard error.
    pub err: &'a mut dyn Write,
    client: Result<Client, ExtensionError>,
}

impl<'a> ExtensionContext<'a> {
    pub(crate) fn new(
        flow: &'static str,
        datastore: String,
        out: &'a mut dyn Write,
        err: &'a mut dyn Write,
        client: Result<Client, ExtensionError>,
    ) -> Self {
        ExtensionContext {
            flow,
            datastore,
            out,
            err,
            client,
        }
    }

    /// The datastore opened for reading; an error if it does not exist.
    ///
    /// # Errors
    ///
    /// The same as the binary's reading commands give (`runs`, `dump`) for the datastore.
    pub fn client(&self) -> Result<Client, ExtensionError> {
        self.client.clone()
    }
}

/// Why an added command failed: its message and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionError {
    /// Printed after `error: `.
    pub message: String,
    /// Exit code 2 (bad input; nothing was written) rather than 1.
    pub usage: bool,
}

impl ExtensionError {
    /// Bad input: exit code 2.
    pub fn usage(message: impl Into<String>) -> Self {
        ExtensionError {
            message: message.into(),
            usage: true,
        }
    }

    /// Anything else that failed: exit code 1.
    pub fn failure(message: impl Into<String>) -> Self {
        ExtensionError {
            message: message.into(),
            usage: false,
        }
    }
}
