//! Provenance: what code a run ran and where it came from, recorded with the run.
//!
//! Part of it is fixed when the flow's crate is compiled ([`BuildInfo`], written by `#[flow]`
//! into the `Flow` implementation: the package, its enabled features, its git commit), part when
//! the runtime is compiled (the compiler's version, by this crate's build script), and part when
//! the run starts (the binary's hash, the user and the machine).

use serde::{Deserialize, Serialize};

/// How a flow's crate was built, as `#[flow]` saw it at compile time. Read as
/// [`Flow::BUILD`](crate::Flow::BUILD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildInfo {
    /// The package (`CARGO_PKG_NAME`) of the crate the flow is defined in; empty if unknown.
    pub package: &'static str,
    /// Its version (`CARGO_PKG_VERSION`); empty if unknown.
    pub version: &'static str,
    /// Each feature its `Cargo.toml` declares, and whether the build enabled it.
    pub features: &'static [(&'static str, bool)],
    /// Each cargo feature of blooming-flowers itself, and whether the build enabled it.
    pub framework_features: &'static [(&'static str, bool)],
    /// The commit of the git checkout the crate was built in, if it was built in one.
    pub git_commit: Option<&'static str>,
    /// Whether that checkout had changes not committed (`git status --porcelain` printed
    /// anything) when the flow's code was last compiled; `None` if git could not tell.
    pub git_dirty: Option<bool>,
}

impl BuildInfo {
    /// Nothing known: what a `Flow` not written by `#[flow]` reports.
    pub const UNKNOWN: BuildInfo = BuildInfo {
        package: "",
        version: "",
        features: &[],
        framework_features: &[],
        git_commit: None,
        git_dirty: None,
    };
}

/// The version of rustc that compiled the runtime (`rustc -V`), which compiled the flow's crate
/// too (one cargo build uses one compiler); empty if the build script could not run it.
pub const RUSTC_VERSION: &str = env!("BLOOMING_RUSTC_VERSION");

/// What a run ran and where it came from, as recorded in its `run.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The BLAKE3 hash (64 hex digits) of the flow binary that started the run; `None` if it
    /// could not be read.
    #[serde(default)]
    pub binary_hash: Option<String>,
    /// The package the flow is defined in.
    #[serde(default)]
    pub package: Option<String>,
    /// Its version.
    #[serde(default)]
    pub package_version: Option<String>,
    /// The features of that package the binary was built with.
    #[serde(default)]
    pub features: Vec<String>,
    /// The version of blooming-flowers.
    #[serde(default)]
    pub framework_version: Option<String>,
    /// The features of blooming-flowers the binary was built with.
    #[serde(default)]
    pub framework_features: Vec<String>,
    /// `rustc -V` of the compiler that built it.
    #[serde(default)]
    pub rustc: Option<String>,
    /// The git commit the package was built from, if it was built in a git checkout.
    #[serde(default)]
    pub git_commit: Option<String>,
    /// Whether that checkout had uncommitted changes; `None` if unknown.
    #[serde(default)]
    pub git_dirty: Option<bool>,
    /// Who started the run.
    #[serde(default)]
    pub user: String,
    /// The machine it was started on.
    #[serde(default)]
    pub host: String,
    /// For a resumed run that was allowed to reuse the tasks of a run made by another binary:
    /// the hash of that binary (see `resume --allow-other-binary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_tasks_of_binary: Option<String>,
}

impl Provenance {
    /// The provenance as `dump RUN` and the web UI show it: a name and a line of text each
    /// (`binary`, `package`, `built by`, `source`, `by`, and `warning` for a resume that reused
    /// the tasks of another binary).
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let with_features = |name: &str, version: Option<&String>, features: &[String]| {
            let mut text = match version {
                Some(version) => format!("{name} {version}"),
                None => name.to_string(),
            };
            if !features.is_empty() {
                text.push_str(&format!(" [features: {}]", features.join(", ")));
            }
            text
        };
        let mut lines = vec![
            (
                "binary",
                self.binary_hash
                    .as_ref()
                    .map_or_else(|| "unknown".to_owned(), |h| format!("BLAKE3 {h}")),
            ),
            (
                "package",
                with_features(
                    self.package.as_deref().unwrap_or("unknown"),
                    self.package_version.as_ref(),
                    &self.features,
                ),
            ),
            (
                "built by",
                format!(
                    "{}; {}",
                    self.rustc.as_deref().unwrap_or("an unknown rustc"),
                    with_features(
                        "blooming-flowers",
                        self.framework_version.as_ref(),
                        &self.framework_features
                    )
                ),
            ),
            (
                "source",
                match (&self.git_commit, self.git_dirty) {
                    (None, _) => "not built from a git checkout".to_owned(),
                    (Some(c), Some(true)) => format!("git {c}, with uncommitted changes"),
                    (Some(c), Some(false)) => format!("git {c}, clean"),
                    (Some(c), None) => format!("git {c}, changes unknown"),
                },
            ),
            ("by", format!("{} on {}", self.user, self.host)),
        ];
        if let Some(other) = &self.reused_tasks_of_binary {
            lines.push((
                "warning",
                format!("reuses tasks made by another flow binary (BLAKE3 {other})"),
            ));
        }
        lines
    }

    /// The provenance of a run started now by this process, built as `build` says, whose binary
    /// hashes to `binary_hash`.
    pub fn of(build: &BuildInfo, binary_hash: Option<String>) -> Provenance {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let enabled = |features: &[(&str, bool)]| {
            features
                .iter()
                .filter(|(_, on)| *on)
                .map(|(name, _)| (*name).to_string())
                .collect()
        };
        Provenance {
            binary_hash,
            package: non_empty(build.package),
            package_version: non_empty(build.version),
            features: enabled(build.features),
            framework_version: Some(env!("CARGO_PKG_VERSION").to_string()),
            framework_features: enabled(build.framework_features),
            rustc: non_empty(RUSTC_VERSION),
            git_commit: build.git_commit.map(str::to_string),
            git_dirty: build.git_dirty,
            user: super::who::current_user(),
            host: super::hostname(),
            reused_tasks_of_binary: None,
        }
    }
}
