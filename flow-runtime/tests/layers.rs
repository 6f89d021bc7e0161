//! The runtime's layers point only down (ARCHITECTURE.md): every `crate::…` path in a module's
//! code, `use` or inline, names a module of its own layer or of a layer below.
//!
//! The sources are parsed with `syn`, so grouped imports (`use crate::{a, b::c}`) and relative
//! ones (`super::…`) count, while comments and doc links do not. Test code (`#[cfg(test)]`
//! items, `tests.rs` and `*_tests.rs` files) is left out: a test may build its fixtures with
//! anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// Each top-level module of the runtime and its layer, bottom up. A module may use modules of
/// its own layer and of lower ones.
const LAYERS: &[(&str, &[&str])] = &[
    ("graph", &["graph", "step_error"]),
    ("state", &["state"]),
    ("datastore", &["datastore"]),
    ("run", &["run"]),
    (
        "flow",
        &[
            "flow",
            "inputs",
            "current",
            "card",
            "checkpoint",
            "burn_model",
        ],
    ),
    ("client", &["client"]),
    ("executor", &["executor", "logs", "progress"]),
    ("argo", &["argo"]),
    ("cli", &["cli"]),
    ("facade", &["private", "lib"]),
];

/// Pairs of the same layer that must still not see each other: reads and writes are separate.
const APART: &[(&str, &str)] = &[("client", "executor"), ("executor", "client")];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

fn layer_name(layer: usize) -> &'static str {
    LAYERS[layer].0
}

/// Every `.rs` file below `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", d.display()))
            .map(|e| e.expect("a directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                found.push(path);
            }
        }
    }
    found
}

/// The module path of a source file: `executor/task.rs` → `[executor, task]`,
/// `executor/mod.rs` → `[executor]`, `lib.rs` → `[]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" && stem != "lib" {
            parts.push(stem.to_string());
        }
    }
    parts
}

fn is_test_file(relative: &Path) -> bool {
    let name = relative
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name == "tests.rs" || name.ends_with("_tests.rs") || relative.iter().any(|p| p == "tests")
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// Collects the paths into this crate that a file's code names, resolving `crate::`, `self::`
/// and `super::` to paths from the crate root.
struct Uses {
    /// The module the code being visited is in (grows inside inline `mod`s).
    module: Vec<String>,
    /// Each path named, from the crate root (`["datastore", "blobs", "BlobStore"]`).
    found: BTreeSet<Vec<String>>,
}

impl Uses {
    fn resolve<'a>(&mut self, segments: impl Iterator<Item = &'a syn::Ident>) {
        let segments: Vec<String> = segments.map(ToString::to_string).collect();
        let Some(first) = segments.first() else {
            return;
        };
        let absolute: Vec<String> = match first.as_str() {
            "crate" => segments[1..].to_vec(),
            "self" => self.module.iter().chain(&segments[1..]).cloned().collect(),
            "super" => {
                let depth = segments.iter().take_while(|s| *s == "super").count();
                let base = self.module.len().saturating_sub(depth);
                self.module[..base]
                    .iter()
                    .chain(&segments[depth..])
                    .cloned()
                    .collect()
            }
            _ => return,
        };
        if !absolute.is_empty() {
            self.found.insert(absolute);
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<syn::Ident>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.clone());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                prefix.push(n.ident.clone());
                self.resolve(prefix.iter());
                prefix.pop();
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.clone());
                self.resolve(prefix.iter());
                prefix.pop();
            }
            syn::UseTree::Glob(_) => self.resolve(prefix.iter()),
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    self.use_tree(prefix, item);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Uses {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Struct(s) => &s.attrs,
            syn::Item::Enum(e) => &e.attrs,
            syn::Item::Const(c) => &c.attrs,
            syn::Item::Static(s) => &s.attrs,
            syn::Item::Trait(t) => &t.attrs,
            syn::Item::Type(t) => &t.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if is_cfg_test(attrs) {
            return;
        }
        if let syn::Item::Mod(m) = item
            && m.content.is_some()
        {
            self.module.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.module.pop();
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.resolve(path.segments.iter().map(|s| &s.ident));
        syn::visit::visit_path(self, path);
    }
}

/// A source file of the runtime, outside test code, with what it names.
struct Source {
    /// Its path below `src/`.
    relative: PathBuf,
    /// Its module path (`executor/task.rs` → `[executor, task]`).
    module: Vec<String>,
    /// The paths into the crate its code names, from the crate root.
    uses: BTreeSet<Vec<String>>,
}

/// Every source file of the runtime but test files, parsed.
///
/// `LAYERS_CHECK_SRC` names another `src/` to check instead (an older checkout, say), so that
/// what these tests find can be seen on a tree that breaks the rules.
fn runtime_sources() -> Vec<Source> {
    let root = std::env::var_os("LAYERS_CHECK_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    sources(&root)
        .into_iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(&root).expect("below src").to_path_buf();
            if is_test_file(&relative) {
                return None;
            }
            let module = module_path(&relative);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let file = syn::parse_file(&text)
                .unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()));
            let mut uses = Uses {
                module: module.clone(),
                found: BTreeSet::new(),
            };
            uses.visit_file(&file);
            Some(Source {
                relative,
                module,
                uses: uses.found,
            })
        })
        .collect()
}

#[test]
fn every_module_imports_only_from_its_layer_or_below() {
    let mut violations = BTreeMap::new();
    let mut unplaced = BTreeSet::new();
    for source in runtime_sources() {
        let own = source
            .module
            .first()
            .cloned()
            .unwrap_or_else(|| "lib".to_string());
        let Some(own_layer) = layer_of(&own) else {
            unplaced.insert(own);
            continue;
        };
        let used: BTreeSet<&String> = source.uses.iter().filter_map(|p| p.first()).collect();
        for used in used {
            if *used == own || used == "__private" {
                continue;
            }
            let Some(used_layer) = layer_of(used) else {
                // A name re-exported at the crate root (`crate::Flow`): inside the crate, name
                // the module it comes from, so that its layer shows.
                violations
                    .entry(source.relative.display().to_string())
                    .or_insert_with(Vec::new)
                    .push(format!(
                        "`crate::{used}` (a re-export; name its module instead)"
                    ));
                continue;
            };
            let apart = APART
                .iter()
                .any(|&(a, b)| LAYERS[own_layer].0 == a && LAYERS[used_layer].0 == b);
            if used_layer > own_layer || apart {
                violations
                    .entry(source.relative.display().to_string())
                    .or_insert_with(Vec::new)
                    .push(format!(
                        "`{used}` (layer `{}`) from layer `{}`",
                        layer_name(used_layer),
                        layer_name(own_layer)
                    ));
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "top-level modules without a layer (add them to LAYERS and to ARCHITECTURE.md): {unplaced:?}"
    );
    let report: Vec<String> = violations
        .iter()
        .map(|(file, used)| format!("{file}: {}", used.join(", ")))
        .collect();
    assert!(
        report.is_empty(),
        "imports that point up a layer:\n{}",
        report.join("\n")
    );
}

/// File cycles that are the nature of the thing: the `Flow` trait hands a join its
/// `Inputs<Self>`, and `Inputs<F>` is generic over `F: Flow`.
const ALLOWED_CYCLES: &[&[&str]] = &[&["flow.rs", "inputs.rs"]];

/// Within a layer too, files never depend on each other both ways, across folders or within
/// one: each file can be read knowing only those it names. A module naming its own submodules
/// (declaring and re-exporting them) is not a dependency; a submodule naming what its parent
/// exports is. The one allowed cycle is [`ALLOWED_CYCLES`].
#[test]
fn no_dependency_cycle_between_files() {
    let sources = runtime_sources();
    let index: BTreeMap<&[String], usize> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.module.as_slice(), i))
        .collect();
    // Each file's edges: to the file of the longest module prefix of every path it names.
    let edges: Vec<BTreeSet<usize>> = sources
        .iter()
        .map(|source| {
            source
                .uses
                .iter()
                .filter_map(|path| {
                    (1..=path.len())
                        .rev()
                        .find_map(|n| index.get(&path[..n]).copied())
                })
                .filter(|&target| {
                    let to = &sources[target].module;
                    // Not itself, and not one of its own submodules.
                    !to.starts_with(&source.module)
                })
                .collect()
        })
        .collect();
    let mut cycles = Vec::new();
    for component in strongly_connected(&edges) {
        let mut files: Vec<String> = component
            .iter()
            .map(|&i| sources[i].relative.display().to_string())
            .collect();
        files.sort();
        if !ALLOWED_CYCLES.contains(
            &files
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice(),
        ) {
            cycles.push(files.join(" ⇄ "));
        }
    }
    assert!(
        cycles.is_empty(),
        "files that depend on each other:\n{}",
        cycles.join("\n")
    );
}

/// The strongly connected components of more than one node (Tarjan's algorithm).
fn strongly_connected(edges: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    struct Walk<'a> {
        edges: &'a [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        found: Vec<Vec<usize>>,
    }
    impl Walk<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            for &w in self.edges[v].iter() {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let n = edges.len();
    let mut walk = Walk {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in 0..n {
        if walk.index[v].is_none() {
            walk.visit(v);
        }
    }
    walk.found
}
