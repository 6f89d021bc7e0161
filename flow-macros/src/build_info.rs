//! What `#[flow]` records about how the user's crate is built, for the provenance of its runs:
//! the package's features (each as `cfg!(feature = "…")`, so the build's choice is what counts)
//! and the git checkout it is built in (commit, and whether it had uncommitted changes).
//!
//! Read at expansion, from `CARGO_MANIFEST_DIR`: the user needs no build script. The generated
//! code also `include_bytes!` the checkout's `HEAD`, its reflog and the branch's ref, so that a
//! commit or a checkout makes cargo compile the crate again and the recorded commit follows.
//!
//! Limits: whether the checkout is dirty is known as of the crate's last compilation (an edit
//! outside the crate's sources, such as a README, does not recompile it); a commit made on a
//! branch whose ref is packed, in a checkout without a reflog, is not noticed until the crate is
//! compiled for another reason; `git` must be on the `PATH` for the dirty flag, else it is
//! unknown. Reading is cached per manifest directory for the compiler process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use proc_macro2::TokenStream;
use quote::quote;

/// The facts of one package, read once per compiler process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildFacts {
    /// The features the package's `Cargo.toml` declares (`default` aside).
    pub features: Vec<String>,
    /// The commit checked out, if the package is in a git checkout.
    pub git_commit: Option<String>,
    /// Whether the checkout has changes; `None` if git could not tell.
    pub git_dirty: Option<bool>,
    /// The files whose change means another commit: compiled in with `include_bytes!`.
    pub tracked: Vec<String>,
}

/// The facts of the package being compiled (empty outside cargo).
fn facts() -> BuildFacts {
    let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else {
        return BuildFacts::default();
    };
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, BuildFacts>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Ok(cache) = cache.lock()
        && let Some(found) = cache.get(&dir)
    {
        return found.clone();
    }
    let found = read_facts(&dir);
    if let Ok(mut cache) = cache.lock() {
        cache.insert(dir, found.clone());
    }
    found
}

fn read_facts(dir: &Path) -> BuildFacts {
    let features = std::fs::read_to_string(dir.join("Cargo.toml"))
        .map(|manifest| declared_features(&manifest))
        .unwrap_or_default();
    let mut facts = BuildFacts {
        features,
        ..BuildFacts::default()
    };
    if let Some(git) = GitCheckout::find(dir) {
        facts.git_commit = git.commit();
        facts.tracked = git.tracked_files();
        facts.git_dirty = facts.git_commit.as_ref().and_then(|_| git.dirty());
    }
    facts
}

/// The `BUILD` constant of the `Flow` implementation, and the `include_bytes!` that tie the
/// crate's compilation to the checkout's commit. `p` is the runtime's private path.
pub fn build_items(p: &TokenStream) -> (TokenStream, TokenStream) {
    let facts = facts();
    let features = facts
        .features
        .iter()
        .map(|f| quote!((#f, ::core::cfg!(feature = #f))));
    let commit = match &facts.git_commit {
        Some(c) => quote!(::core::option::Option::Some(#c)),
        None => quote!(::core::option::Option::None),
    };
    let dirty = match facts.git_dirty {
        Some(d) => quote!(::core::option::Option::Some(#d)),
        None => quote!(::core::option::Option::None),
    };
    let build = quote! {
        const BUILD: &'static #p::BuildInfo = &#p::BuildInfo {
            package: ::core::env!("CARGO_PKG_NAME"),
            version: ::core::env!("CARGO_PKG_VERSION"),
            features: &[#(#features),*],
            framework_features: #p::FRAMEWORK_FEATURES,
            git_commit: #commit,
            git_dirty: #dirty,
        };
    };
    let tracked = facts.tracked.iter();
    let tracking = quote! {
        #(const _: &[::core::primitive::u8] = ::core::include_bytes!(#tracked);)*
    };
    (build, tracking)
}

/// The names of the features a `Cargo.toml` declares, `default` aside: the keys of its
/// `[features]` table. A line reader, not a TOML parser: enough for the manifests cargo accepts,
/// where each key of that table starts a line.
pub fn declared_features(manifest: &str) -> Vec<String> {
    let mut in_features = false;
    let mut depth: i32 = 0;
    let mut found = Vec::new();
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let trimmed = line.trim();
        if depth == 0 && trimmed.starts_with('[') {
            in_features = trimmed.trim_end() == "[features]";
            continue;
        }
        if in_features
            && depth == 0
            && let Some((key, _)) = trimmed.split_once('=')
        {
            let key = key.trim().trim_matches('"');
            let plain = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.'));
            if plain && key != "default" {
                found.push(key.to_string());
            }
        }
        let value = trimmed.split_once('=').map_or(trimmed, |(_, v)| v);
        let opened = value.matches('[').count() as i32;
        let closed = value.matches(']').count() as i32;
        depth = (depth + opened - closed).max(0);
    }
    found.sort();
    found.dedup();
    found
}

/// A git checkout: its work tree, its own git directory (per worktree) and the common one.
#[derive(Debug)]
struct GitCheckout {
    work_tree: PathBuf,
    git_dir: PathBuf,
    common_dir: PathBuf,
}

impl GitCheckout {
    /// The checkout `dir` is in: the first `.git` upward, a directory or a `gitdir:` file (a
    /// linked worktree or a submodule).
    fn find(dir: &Path) -> Option<GitCheckout> {
        let mut at = Some(dir);
        while let Some(here) = at {
            let dot_git = here.join(".git");
            let git_dir = if dot_git.is_dir() {
                Some(dot_git)
            } else if dot_git.is_file() {
                let text = std::fs::read_to_string(&dot_git).ok()?;
                let target = text.trim().strip_prefix("gitdir:")?.trim();
                Some(here.join(target))
            } else {
                None
            };
            if let Some(git_dir) = git_dir {
                let common_dir = std::fs::read_to_string(git_dir.join("commondir"))
                    .map(|c| git_dir.join(c.trim()))
                    .unwrap_or_else(|_| git_dir.clone());
                return Some(GitCheckout {
                    work_tree: here.to_path_buf(),
                    git_dir,
                    common_dir,
                });
            }
            at = here.parent();
        }
        None
    }

    /// `HEAD`'s target, if `HEAD` names a branch.
    fn head_ref(&self) -> Option<String> {
        let head = std::fs::read_to_string(self.git_dir.join("HEAD")).ok()?;
        head.trim()
            .strip_prefix("ref:")
            .map(|r| r.trim().to_string())
    }

    /// The commit checked out (40 or 64 hex digits), from `HEAD`, the branch's loose ref or
    /// `packed-refs`. `None` on an unborn branch or an unreadable checkout.
    fn commit(&self) -> Option<String> {
        let is_hash =
            |s: &str| (s.len() == 40 || s.len() == 64) && s.chars().all(|c| c.is_ascii_hexdigit());
        let Some(name) = self.head_ref() else {
            let head = std::fs::read_to_string(self.git_dir.join("HEAD")).ok()?;
            let head = head.trim();
            return is_hash(head).then(|| head.to_string());
        };
        for dir in [&self.git_dir, &self.common_dir] {
            if let Ok(value) = std::fs::read_to_string(dir.join(&name)) {
                let value = value.trim();
                if is_hash(value) {
                    return Some(value.to_string());
                }
            }
        }
        let packed = std::fs::read_to_string(self.common_dir.join("packed-refs")).ok()?;
        packed.lines().find_map(|line| {
            let (hash, refname) = line.split_once(' ')?;
            (refname.trim() == name && is_hash(hash)).then(|| hash.to_string())
        })
    }

    /// The files that change when the commit checked out does and that exist now.
    fn tracked_files(&self) -> Vec<String> {
        let mut files = vec![self.git_dir.join("HEAD"), self.git_dir.join("logs/HEAD")];
        if let Some(name) = self.head_ref() {
            files.push(self.git_dir.join(&name));
            files.push(self.common_dir.join(&name));
        }
        files.push(self.common_dir.join("packed-refs"));
        let mut tracked: Vec<String> = files
            .into_iter()
            .filter(|f| f.is_file())
            .filter_map(|f| f.canonicalize().ok())
            .filter_map(|f| f.to_str().map(str::to_string))
            .collect();
        tracked.sort();
        tracked.dedup();
        tracked
    }

    /// Whether `git status --porcelain` lists anything; `None` if git cannot be run.
    fn dirty(&self) -> Option<bool> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&self.work_tree)
            .args(["status", "--porcelain"])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        out.status.success().then_some(!out.stdout.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_features_table_is_read_and_nothing_else() {
        let manifest = r#"
[package]
name = "x"
keywords = ["a = b"]

[features]
default = ["fast"]
fast = []
"with-gpu" = ["dep:cuda", # comment ]
  "other",
]
# removed = []
s3 = ["blooming-flowers/s3"]

[dependencies]
serde = { version = "1", features = ["derive"] }
"#;
        assert_eq!(declared_features(manifest), ["fast", "s3", "with-gpu"]);
        assert!(declared_features("[package]\nname = \"x\"\n").is_empty());
    }

    #[test]
    fn this_crate_is_found_in_its_checkout() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let Some(git) = GitCheckout::find(dir) else {
            // Built from a source archive: nothing to check.
            return;
        };
        let commit = git.commit().expect("a commit");
        assert!(commit.chars().all(|c| c.is_ascii_hexdigit()), "{commit}");
        let tracked = git.tracked_files();
        assert!(tracked.iter().any(|f| f.ends_with("HEAD")), "{tracked:?}");
    }

    #[test]
    fn a_linked_worktree_is_followed_to_its_common_directory() {
        let root = std::env::temp_dir().join(format!("flow-macros-git-{}", std::process::id()));
        let main_git = root.join("main/.git");
        let wt_git = main_git.join("worktrees/wt");
        std::fs::create_dir_all(wt_git.join("logs")).expect("dirs");
        std::fs::create_dir_all(main_git.join("refs/heads")).expect("dirs");
        std::fs::create_dir_all(root.join("wt/crate")).expect("dirs");
        std::fs::write(
            root.join("wt/.git"),
            format!("gitdir: {}\n", wt_git.display()),
        )
        .expect("write");
        std::fs::write(wt_git.join("HEAD"), "ref: refs/heads/topic\n").expect("write");
        std::fs::write(wt_git.join("commondir"), "../..\n").expect("write");
        let hash = "0123456789abcdef0123456789abcdef01234567";
        std::fs::write(
            main_git.join("packed-refs"),
            format!("# pack\n{hash} refs/heads/topic\n"),
        )
        .expect("write");
        let git = GitCheckout::find(&root.join("wt/crate")).expect("found");
        assert_eq!(git.commit().as_deref(), Some(hash));
        let other = "fedcba9876543210fedcba9876543210fedcba98";
        std::fs::write(main_git.join("refs/heads/topic"), format!("{other}\n")).expect("write");
        assert_eq!(git.commit().as_deref(), Some(other), "a loose ref wins");
        assert!(
            git.tracked_files()
                .iter()
                .any(|f| f.ends_with("refs/heads/topic"))
        );
        std::fs::remove_dir_all(&root).expect("clean up");
    }
}
