//! Arguments several commands share, as clap defines them and as the commands read them.

use clap::{Arg, ArgAction, ArgMatches};

use super::error::CliError;
use crate::datastore::validate_segment;

/// Checks a tag: not empty, at most 256 bytes, no whitespace or control characters.
pub(crate) fn parse_tag(tag: &str) -> Result<String, String> {
    if tag.is_empty() {
        return Err("a tag cannot be empty".to_owned());
    }
    if tag.len() > 256 {
        return Err(format!(
            "a tag has at most 256 bytes, this one {}",
            tag.len()
        ));
    }
    if let Some(c) = tag.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "a tag cannot contain whitespace or control characters (found {c:?})"
        ));
    }
    Ok(tag.to_owned())
}

/// The `--tag` option of `run`, `resume`, `runs`, `init` and `argo-workflow`.
pub(crate) fn tag_arg(help: &'static str) -> Arg {
    Arg::new("tag")
        .long("tag")
        .value_name("TAG")
        .action(ArgAction::Append)
        .value_parser(parse_tag)
        .help(help)
}

/// The values of `--tag`, in order.
pub(crate) fn tags(matches: &ArgMatches) -> Vec<String> {
    strings(matches, "tag")
}

/// Every value of the option `id`, in order.
pub(crate) fn strings(matches: &ArgMatches, id: &str) -> Vec<String> {
    matches
        .get_many::<String>(id)
        .map(|values| values.cloned().collect())
        .unwrap_or_default()
}

/// The value of the required argument `id` (empty if clap let it through without one).
pub(crate) fn required<'m>(matches: &'m ArgMatches, id: &str) -> &'m str {
    matches
        .get_one::<String>(id)
        .map(String::as_str)
        .unwrap_or_default()
}

/// The `--json` flag of the reading commands.
pub(crate) fn json_arg(help: &'static str) -> Arg {
    Arg::new("json")
        .long("json")
        .action(ArgAction::SetTrue)
        .help(help)
}

/// Checks `value` as one segment of a datastore key, naming it `what` in the message.
pub(crate) fn check_segment(value: &str, what: &'static str) -> Result<(), CliError> {
    validate_segment(value).map_err(|e| CliError::usage(e.describing(what).to_string()))
}

/// `RUN[/STEP[/TASK]]`, each part checked as a datastore key segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub run: String,
    pub step: Option<String>,
    pub task: Option<String>,
}

impl Target {
    pub fn parse(text: &str) -> Result<Target, CliError> {
        let parts: Vec<&str> = text.split('/').collect();
        if parts.len() > 3 {
            return Err(CliError::usage(format!(
                "`{text}` is not RUN[/STEP[/TASK]]: it has {} parts",
                parts.len()
            )));
        }
        for (part, what) in parts.iter().zip(["run id", "step name", "task id"]) {
            validate_segment(part).map_err(|e| {
                CliError::usage(format!(
                    "`{text}` is not RUN[/STEP[/TASK]]: {}",
                    e.describing(what)
                ))
            })?;
        }
        Ok(Target {
            run: parts[0].to_owned(),
            step: parts.get(1).map(|s| (*s).to_owned()),
            task: parts.get(2).map(|s| (*s).to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::EXIT_USAGE;

    #[test]
    fn targets_parse_and_refuse_escapes() {
        let t = Target::parse("20261127T021328123Z-3f9a1c7e/sq/3-1").expect("valid");
        assert_eq!(t.run, "20261127T021328123Z-3f9a1c7e");
        assert_eq!(t.step.as_deref(), Some("sq"));
        assert_eq!(t.task.as_deref(), Some("3-1"));
        assert_eq!(Target::parse("latest").expect("valid").step, None);
        for bad in [
            "../x",
            "/etc/passwd",
            "run/../../x",
            "run//0",
            "",
            "a/b/c/d",
            "run/.hidden",
            "a\\b",
        ] {
            let e = Target::parse(bad).expect_err(bad);
            assert_eq!(e.code, EXIT_USAGE, "{bad}");
        }
        assert!(
            Target::parse("../x")
                .expect_err("escape")
                .message
                .contains("..\"")
        );
    }
}
