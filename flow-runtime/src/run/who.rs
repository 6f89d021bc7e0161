//! Who does something recorded in the datastore: the user a run, a promotion or a demotion is
//! recorded with.

/// The user this process runs as: `$USER`, else `$LOGNAME`, else `%USERNAME%`, else the name
/// `/etc/passwd` gives this process's real uid, else `uid <n>`. Never empty.
///
/// A user known only to a network directory (LDAP through NSS) and absent from the environment
/// is recorded by uid: reading `/etc/passwd` needs no C library call. Looked up once per
/// process (a run records it twice: in its record and its provenance).
pub fn current_user() -> String {
    static USER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    USER.get_or_init(look_up_user).clone()
}

fn look_up_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| {
            let uid = rustix::process::getuid().as_raw();
            std::fs::read_to_string("/etc/passwd")
                .ok()
                .and_then(|passwd| user_of_uid(&passwd, uid))
                .unwrap_or_else(|| format!("uid {uid}"))
        })
}

/// The name of user `uid` in the text of an `/etc/passwd` file, if it lists one.
fn user_of_uid(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let found: u32 = fields.next()?.trim().parse().ok()?;
        (found == uid && !name.is_empty() && !name.starts_with('#')).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_is_found_in_a_passwd_file() {
        let passwd = "# comment\nroot:x:0:0:root:/root:/bin/bash\n\nbroken\nana:x:1000:1000::/home/ana:/bin/sh\n";
        assert_eq!(user_of_uid(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_of_uid(passwd, 1000).as_deref(), Some("ana"));
        assert_eq!(user_of_uid(passwd, 7), None);
    }

    #[test]
    fn the_current_user_is_never_empty() {
        assert!(!current_user().trim().is_empty());
    }
}
