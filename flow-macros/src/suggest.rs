//! "Did you mean …?" for misspelt step and option names.

/// The candidate closest to `name`, if it is close enough to be a likely typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // Edit distance catches typos in short names; Jaro-Winkler catches a changed ending
    // (`retry` for `retries`), which costs several edits.
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| {
            (
                strsim::damerau_levenshtein(name, c),
                strsim::jaro_winkler(name, c),
                c,
            )
        })
        .filter(|(d, jw, _)| *d <= limit || *jw >= 0.85)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, c)| c)
}

/// `"; did you mean `x`?"` or nothing.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match closest(name, candidates) {
        Some(c) => format!("; did you mean `{c}`?"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_names_are_suggested() {
        assert_eq!(
            closest("gahter", ["gather", "start", "end"]),
            Some("gather")
        );
        assert_eq!(closest("ned", ["gather", "start", "end"]), Some("end"));
        assert_eq!(closest("retry", ["retries", "timeout"]), Some("retries"));
    }

    #[test]
    fn far_names_are_not() {
        assert_eq!(closest("zzzzzz", ["gather", "start", "end"]), None);
        assert_eq!(did_you_mean("q", ["gather"]), "");
    }
}
