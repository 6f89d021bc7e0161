//! Arguments written for a POSIX shell: the Slurm job script, and the command lines the CLI
//! suggests to users.

/// `s` as one shell word: as it is when it holds only characters no shell treats specially,
/// otherwise in single quotes.
pub(crate) fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_quote("/tmp/a-b/.blooming"), "/tmp/a-b/.blooming");
        assert_eq!(shell_quote("/tmp/my runs"), "'/tmp/my runs'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
