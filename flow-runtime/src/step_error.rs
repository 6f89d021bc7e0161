//! The error a failed step reports.

use std::error::Error;
use std::fmt;

/// Why a step failed: its error's message with the chain of sources, or a panic's message and
/// location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    /// The error's own message.
    pub message: String,
    /// The messages of the error's sources, outermost first.
    pub causes: Vec<String>,
}

impl StepError {
    /// An error with only a message.
    pub fn msg(message: impl Into<String>) -> Self {
        StepError {
            message: message.into(),
            causes: Vec::new(),
        }
    }

    /// Captures an error and the chain of its sources.
    pub fn from_error(error: Box<dyn Error + Send + Sync + 'static>) -> Self {
        let mut causes = Vec::new();
        let mut source = error.source();
        while let Some(s) = source {
            causes.push(s.to_string());
            source = s.source();
        }
        StepError {
            message: error.to_string(),
            causes,
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for cause in &self.causes {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl Error for StepError {}

/// What a step may return: `()` or `Result<(), E>` for any error type `E`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a return type a step can have",
    label = "a step returns `()` or `Result<(), E>` where `E` is an error type",
    note = "`E` can be any `std::error::Error + Send + Sync`, `anyhow::Error`, `String` or `&'static str`"
)]
pub trait StepReturn {
    /// Turns the step's return value into the executor's result.
    fn into_step_result(self) -> Result<(), StepError>;
}

impl StepReturn for () {
    fn into_step_result(self) -> Result<(), StepError> {
        Ok(())
    }
}

impl<E> StepReturn for Result<(), E>
where
    E: Into<Box<dyn Error + Send + Sync + 'static>>,
{
    fn into_step_result(self) -> Result<(), StepError> {
        self.map_err(|e| StepError::from_error(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("loading the data failed")
        }
    }
    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn error_chain_is_kept() {
        let r: Result<(), Outer> = Err(Outer(std::io::Error::other("disk on fire")));
        let e = r.into_step_result().unwrap_err();
        assert_eq!(e.message, "loading the data failed");
        assert_eq!(e.causes, vec!["disk on fire".to_string()]);
        assert_eq!(e.to_string(), "loading the data failed: disk on fire");
    }

    #[test]
    fn string_errors_and_unit_are_step_returns() {
        assert!(().into_step_result().is_ok());
        let r: Result<(), String> = Err("bad".into());
        assert_eq!(r.into_step_result().unwrap_err().message, "bad");
        let r: Result<(), &'static str> = Ok(());
        assert!(r.into_step_result().is_ok());
    }
}
