//! Links between pages, and the checks every name taken from a request goes through.

use flow_runtime::datastore::validate_segment;

use crate::UiError;

/// `name` if it can be one segment of a datastore key (no `/`, no `..`, no leading dot, …);
/// otherwise a 400 that says which part of the request was wrong.
pub(crate) fn segment<'a>(what: &str, name: &'a str) -> Result<&'a str, UiError> {
    validate_segment(name)
        .map(|()| name)
        .map_err(|e| UiError::BadRequest(format!("bad {what} name: {e}")))
}

/// `text` percent-encoded for one path segment or query value: every byte but the unreserved
/// characters of RFC 3986.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `/flows/FLOW`.
pub(crate) fn flow(flow: &str) -> String {
    format!("/flows/{}", encode(flow))
}

/// `/flows/FLOW/compare`.
pub(crate) fn compare(flow: &str) -> String {
    format!("{}/compare", self::flow(flow))
}

/// `/flows/FLOW/runs/RUN`.
pub(crate) fn run(flow: &str, run: &str) -> String {
    format!("{}/runs/{}", self::flow(flow), encode(run))
}

/// `/flows/FLOW/runs/RUN/status.json`.
pub(crate) fn run_status(flow: &str, run: &str) -> String {
    format!("{}/status.json", self::run(flow, run))
}

/// `/flows/FLOW/runs/RUN/steps/STEP`.
pub(crate) fn step(flow: &str, run: &str, step: &str) -> String {
    format!("{}/steps/{}", self::run(flow, run), encode(step))
}

/// `/flows/FLOW/runs/RUN/steps/STEP/tasks/TASK`.
pub(crate) fn task(flow: &str, run: &str, step: &str, task: &str) -> String {
    format!("{}/tasks/{}", self::step(flow, run, step), encode(task))
}

/// `/flows/FLOW/runs/RUN/steps/STEP/tasks/TASK/card`.
pub(crate) fn card(flow: &str, run: &str, step: &str, task: &str) -> String {
    format!("{}/card", self::task(flow, run, step, task))
}

/// `/raw/FLOW/RUN/STEP/TASK/ARTIFACT`.
pub(crate) fn raw(flow: &str, run: &str, step: &str, task: &str, artifact: &str) -> String {
    [flow, run, step, task, artifact]
        .iter()
        .fold("/raw".to_owned(), |path, part| {
            format!("{path}/{}", encode(part))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreserved_characters_are_left_as_they_are() {
        assert_eq!(encode("a-b_c.d~9"), "a-b_c.d~9");
        assert_eq!(encode("a/b c?&é"), "a%2Fb%20c%3F%26%C3%A9");
    }

    #[test]
    fn names_that_could_leave_the_datastore_are_refused() {
        for bad in ["..", ".", "a/b", "", "/etc", "a\\b", ".hidden"] {
            assert!(segment("run", bad).is_err(), "{bad:?}");
        }
        assert_eq!(segment("run", "1733-abc").ok(), Some("1733-abc"));
    }
}
