//! Text, DOT and Mermaid renderings of a [`FlowGraph`](super::FlowGraph).
//!
//! The three renderings list the steps in one shared order ([`FlowGraph::topological_order`], the
//! order the Argo manifest lists them in too), so that they agree with each other and stay
//! byte-for-byte stable from one build to the next: a rendered graph can be committed, diffed and
//! asserted on in tests.
//!
//! None of them trusts the graph to be well formed. `#[flow]` only ever produces valid DAGs, but a
//! hand-written graph may hold a cycle, an unreachable step or an index out of range; each step is
//! then still rendered exactly once, and nothing panics or loops.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::{self, Write as _};
use std::time::Duration;

use super::{CatchSpec, FlowGraph, Loops, StepKind, StepOptions, Transition};

impl FlowGraph {
    /// A plain-text description of the flow for a terminal, in the spirit of Metaflow's `show`.
    ///
    /// Steps come in execution order rather than declaration order, so the listing reads top to
    /// bottom the way a run proceeds; each step shows its doc, its options and where it goes next.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out)
            .expect("formatting into a String cannot fail");
        out
    }

    /// The graph in Graphviz DOT, for `dot -Tsvg` and every tool that reads DOT.
    ///
    /// Step kinds get distinct node shapes so that splits, joins and switches stand out at a
    /// glance; foreach and switch edges carry the field or the pattern that drives them. Each
    /// node's tooltip is the step's doc, which SVG output shows on hover.
    pub fn to_dot(&self) -> String {
        let mut out = String::new();
        self.write_dot(&mut out)
            .expect("formatting into a String cannot fail");
        out
    }

    /// The graph as a Mermaid `flowchart TD`, which GitHub, GitLab and most Markdown viewers
    /// render inline, so a flow's shape can live in its README.
    ///
    /// Node ids are the step names, except where Mermaid would read the name as a keyword (every
    /// flow has an `end` step, and `end` closes a subgraph in Mermaid): such a name is prefixed
    /// with `_`, which no step name starts with. Labels are always quoted and escaped.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::new();
        self.write_mermaid(&mut out)
            .expect("formatting into a String cannot fail");
        out
    }

    fn write_text(&self, out: &mut String) -> fmt::Result {
        writeln!(out, "Flow {}", self.name)?;
        write_doc(out, self.doc)?;
        let loops = Loops::of(self);
        for i in self.topological_order() {
            let step = &self.steps[i];
            writeln!(out)?;
            writeln!(out, "Step {} ({})", step.name, step.kind().as_str())?;
            write_doc(out, step.doc)?;
            if let Some(split) = step.join {
                writeln!(out, "    join of the split at `{}`", self.name_of(split))?;
            }
            if let Some((parent, field)) = self.foreach_parent(i) {
                writeln!(
                    out,
                    "    body of the foreach at `{}`: one task per element of `{field}`",
                    self.name_of(parent)
                )?;
            }
            if loops.headed_by(i).is_some() {
                let back: Vec<String> = loops
                    .back_arms_to(i)
                    .map(|s| format!("`{}`", self.name_of(s)))
                    .collect();
                writeln!(
                    out,
                    "    head of a loop: each pass starts here; {} can go back for another",
                    back.join(", ")
                )?;
            }
            if let Some(options) = options_text(&step.options) {
                writeln!(out, "    options: {options}")?;
            }
            if !step.options.resources.is_empty() {
                writeln!(out, "    resources: {}", step.options.resources)?;
            }
            writeln!(out, "    {}", self.transition_text(i, &loops))?;
        }
        Ok(())
    }

    fn write_dot(&self, out: &mut String) -> fmt::Result {
        writeln!(out, "digraph \"{}\" {{", dot_escape(self.name))?;
        writeln!(out, "    node [fontname=\"Helvetica\"];")?;
        writeln!(out, "    edge [fontname=\"Helvetica\", fontsize=10];")?;
        let order = self.topological_order();
        writeln!(out)?;
        for &i in &order {
            let step = &self.steps[i];
            let kind = step.kind();
            let mut label = dot_escape(step.name).into_owned();
            if step.name != kind.as_str() {
                label.push_str("\\n");
                label.push_str(kind.as_str());
            }
            if !step.options.resources.is_empty() {
                label.push_str("\\n");
                label.push_str(&step.options.resources.to_string());
            }
            let (shape, style) = if i == self.start {
                ("ellipse", None)
            } else {
                match kind {
                    StepKind::Linear => ("box", Some("rounded")),
                    StepKind::Branch => ("trapezium", None),
                    StepKind::Foreach => ("hexagon", None),
                    StepKind::Switch => ("diamond", None),
                    StepKind::Join => ("invtrapezium", None),
                    StepKind::End => ("doublecircle", None),
                }
            };
            write!(
                out,
                "    \"{}\" [label=\"{label}\", shape={shape}",
                dot_escape(step.name)
            )?;
            if let Some(style) = style {
                write!(out, ", style={style}")?;
            }
            let doc = step.doc.trim();
            if !doc.is_empty() {
                write!(out, ", tooltip=\"{}\"", dot_escape(doc))?;
            }
            writeln!(out, "];")?;
        }
        writeln!(out)?;
        let loops = Loops::of(self);
        for &i in &order {
            let from = dot_escape(self.steps[i].name);
            for (target, edge) in self.edges(i) {
                let to = dot_escape(self.steps[target].name);
                match edge {
                    Edge::Plain => writeln!(out, "    \"{from}\" -> \"{to}\";")?,
                    Edge::Foreach(field) => writeln!(
                        out,
                        "    \"{from}\" -> \"{to}\" [label=\"foreach {}\"];",
                        dot_escape(field)
                    )?,
                    Edge::Arm(pattern) if loops.is_back_arm(i, target) => writeln!(
                        out,
                        "    \"{from}\" -> \"{to}\" [label=\"{} (loop)\", style=dashed, constraint=false];",
                        dot_escape(pattern)
                    )?,
                    Edge::Arm(pattern) => writeln!(
                        out,
                        "    \"{from}\" -> \"{to}\" [label=\"{}\", style=dashed];",
                        dot_escape(pattern)
                    )?,
                }
            }
        }
        writeln!(out, "}}")
    }

    fn write_mermaid(&self, out: &mut String) -> fmt::Result {
        let ids = self.mermaid_ids();
        writeln!(out, "flowchart TD")?;
        let order = self.topological_order();
        for &i in &order {
            let step = &self.steps[i];
            let kind = step.kind();
            let mut label = mermaid_escape(step.name);
            if step.name != kind.as_str() {
                label.push_str("<br/>");
                label.push_str(kind.as_str());
            }
            if !step.options.resources.is_empty() {
                label.push_str("<br/>");
                label.push_str(&step.options.resources.to_string());
            }
            let (open, close) = if i == self.start {
                ("([", "])")
            } else {
                match kind {
                    StepKind::Linear => ("[", "]"),
                    StepKind::Branch => ("[/", "\\]"),
                    StepKind::Foreach => ("{{", "}}"),
                    StepKind::Switch => ("{", "}"),
                    StepKind::Join => ("[\\", "/]"),
                    StepKind::End => ("(((", ")))"),
                }
            };
            writeln!(out, "    {}{open}\"{label}\"{close}", ids[i])?;
        }
        let loops = Loops::of(self);
        for &i in &order {
            for (target, edge) in self.edges(i) {
                let (from, to) = (&ids[i], &ids[target]);
                match edge {
                    Edge::Plain => writeln!(out, "    {from} --> {to}")?,
                    Edge::Foreach(field) => writeln!(
                        out,
                        "    {from} -->|\"foreach {}\"| {to}",
                        mermaid_escape(field)
                    )?,
                    Edge::Arm(pattern) if loops.is_back_arm(i, target) => writeln!(
                        out,
                        "    {from} -.->|\"{} (loop)\"| {to}",
                        mermaid_escape(pattern)
                    )?,
                    Edge::Arm(pattern) => {
                        writeln!(out, "    {from} -->|\"{}\"| {to}", mermaid_escape(pattern))?
                    }
                }
            }
        }
        Ok(())
    }

    /// The name of step `index`, or a visible placeholder for an index out of range.
    fn name_of(&self, index: usize) -> Cow<'static, str> {
        match self.steps.get(index) {
            Some(step) => Cow::Borrowed(step.name),
            None => Cow::Owned(format!("<missing step #{index}>")),
        }
    }

    /// The first foreach step whose body is `index`, with the field it fans out over.
    fn foreach_parent(&self, index: usize) -> Option<(usize, &'static str)> {
        self.steps
            .iter()
            .enumerate()
            .find_map(|(i, s)| match s.transition {
                Transition::Foreach { field, body } if body == index => Some((i, field)),
                _ => None,
            })
    }

    fn transition_text(&self, index: usize, loops: &Loops) -> String {
        match self.steps[index].transition {
            Transition::End => "(end of the flow)".to_owned(),
            Transition::Linear(t) => format!("→ {}", self.name_of(t)),
            Transition::Branch(targets) => {
                let names: Vec<_> = targets.iter().map(|&t| self.name_of(t)).collect();
                format!("→ {} (branches)", names.join(", "))
            }
            Transition::Foreach { field, body } => {
                format!("→ {} for each element of `{field}`", self.name_of(body))
            }
            Transition::Switch(arms) => {
                let arms: Vec<_> = arms
                    .iter()
                    .map(|arm| {
                        let again = if loops.is_back_arm(index, arm.target) {
                            " (loop)"
                        } else {
                            ""
                        };
                        format!("{} ⇒ {}{again}", arm.pattern, self.name_of(arm.target))
                    })
                    .collect();
                format!("→ switch: {}", arms.join(", "))
            }
        }
    }

    /// The outgoing edges of step `index` that lead to existing steps, in source order.
    fn edges(&self, index: usize) -> Vec<(usize, Edge)> {
        let n = self.steps.len();
        let edges = match self.steps[index].transition {
            Transition::End => Vec::new(),
            Transition::Linear(t) => vec![(t, Edge::Plain)],
            Transition::Branch(targets) => targets.iter().map(|&t| (t, Edge::Plain)).collect(),
            Transition::Foreach { field, body } => vec![(body, Edge::Foreach(field))],
            Transition::Switch(arms) => arms
                .iter()
                .map(|arm| (arm.target, Edge::Arm(arm.pattern)))
                .collect(),
        };
        edges.into_iter().filter(|&(t, _)| t < n).collect()
    }

    /// One Mermaid node id per step: the step name where Mermaid accepts it, otherwise a mangled
    /// form that collides with no other id.
    fn mermaid_ids(&self) -> Vec<String> {
        let mut ids: Vec<Option<String>> = vec![None; self.steps.len()];
        let mut used = HashSet::new();
        // Names that are usable as they are keep them, so mangling never steals a real name.
        for (i, step) in self.steps.iter().enumerate() {
            if mermaid_id_ok(step.name) && used.insert(step.name.to_owned()) {
                ids[i] = Some(step.name.to_owned());
            }
        }
        for (i, step) in self.steps.iter().enumerate() {
            if ids[i].is_some() {
                continue;
            }
            let mut id: String = step
                .name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            if id.is_empty() {
                id.push_str("step");
            }
            if !mermaid_id_ok(&id) {
                id.insert(0, '_');
            }
            while !used.insert(id.clone()) {
                id.push('_');
            }
            ids[i] = Some(id);
        }
        ids.into_iter().map(Option::unwrap_or_default).collect()
    }
}

/// What an edge carries besides its ends.
enum Edge {
    Plain,
    Foreach(&'static str),
    Arm(&'static str),
}

/// Writes a doc comment indented under its heading, without its surrounding blank lines.
fn write_doc(out: &mut String, doc: &str) -> fmt::Result {
    let lines: Vec<&str> = doc.lines().map(str::trim_end).collect();
    let Some(first) = lines.iter().position(|l| !l.is_empty()) else {
        return Ok(());
    };
    let last = lines.iter().rposition(|l| !l.is_empty()).unwrap_or(first);
    for line in &lines[first..=last] {
        if line.is_empty() {
            writeln!(out)?;
        } else {
            writeln!(out, "    {line}")?;
        }
    }
    Ok(())
}

/// The options in the syntax `#[step(...)]` takes them, or `None` when all are defaults.
fn options_text(options: &StepOptions) -> Option<String> {
    let mut parts = Vec::new();
    if options.retries > 0 {
        parts.push(format!("retries = {}", options.retries));
    }
    if let Some(timeout) = options.timeout {
        parts.push(format!("timeout = {}", duration_text(timeout)));
    }
    match options.catch {
        Some(CatchSpec { field: Some(field) }) => parts.push(format!("catch = {field}")),
        Some(CatchSpec { field: None }) => parts.push("catch".to_owned()),
        None => {}
    }
    if let Some(max) = options.max_iterations {
        parts.push(format!("max_iterations = {max}"));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// A duration the way a person writes a timeout: `30s`, `5m`, `1h30m`, `1500ms`.
fn duration_text(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    if nanos != 0 {
        return if nanos.is_multiple_of(1_000_000) {
            format!("{}ms", d.as_millis())
        } else if nanos.is_multiple_of(1_000) {
            format!("{}µs", d.as_micros())
        } else {
            format!("{}ns", d.as_nanos())
        };
    }
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".to_owned();
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut text = String::new();
    for (value, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if value > 0 {
            text.push_str(&format!("{value}{unit}"));
        }
    }
    text
}

/// Escapes text for a double-quoted DOT string. A newline becomes DOT's own `\n` line break.
fn dot_escape(text: &str) -> Cow<'_, str> {
    if !text.contains(['"', '\\', '\n', '\r']) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\r' => {}
            c => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

/// Escapes text for a double-quoted Mermaid label with Mermaid's `#…;` entity codes: a quote
/// would end the string, `#` would start an entity, `<`, `>` and `&` would be read as HTML, and a
/// leading backtick would turn the label into Markdown.
fn mermaid_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '"' => escaped.push_str("#quot;"),
            '#' => escaped.push_str("#35;"),
            '<' => escaped.push_str("#lt;"),
            '>' => escaped.push_str("#gt;"),
            '&' => escaped.push_str("#amp;"),
            '`' => escaped.push_str("#96;"),
            '\n' => escaped.push_str("<br/>"),
            '\r' => {}
            c => escaped.push(c),
        }
    }
    escaped
}

/// Whether Mermaid's flowchart lexer reads `id` as one plain node id. It matches its keywords as
/// prefixes (`styles` lexes as `style` + `s`), except `end`, which must stand alone, and `call`,
/// `click` and `href`, which must be followed by a space.
fn mermaid_id_ok(id: &str) -> bool {
    const KEYWORD_PREFIXES: [&str; 12] = [
        "style",
        "linkStyle",
        "classDef",
        "class",
        "interpolate",
        "graph",
        "flowchart",
        "subgraph",
        "_self",
        "_blank",
        "_parent",
        "_top",
    ];
    const KEYWORDS: [&str; 4] = ["end", "call", "click", "href"];
    !id.is_empty()
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORD_PREFIXES.iter().any(|k| id.starts_with(k))
        && !KEYWORDS.contains(&id)
}

#[cfg(test)]
mod tests {
    use super::super::{
        CatchSpec, FlowGraph, Resources, StepOptions, StepSpec, SwitchArm, Transition,
    };
    use std::time::Duration;

    const NO_OPTIONS: StepOptions = StepOptions {
        retries: 0,
        timeout: None,
        catch: None,
        max_iterations: None,
        resources: Resources::NONE,
    };

    const fn step(name: &'static str, transition: Transition) -> StepSpec {
        StepSpec {
            name,
            doc: "",
            transition,
            join: None,
            options: NO_OPTIONS,
        }
    }

    const fn join(name: &'static str, split: usize, transition: Transition) -> StepSpec {
        StepSpec {
            join: Some(split),
            ..step(name, transition)
        }
    }

    /// Asserts that `text` has `line` as one whole line, and shows the text when it does not.
    #[track_caller]
    fn assert_line(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in:\n{text}"
        );
    }

    /// The lines of `text` that start with `prefix`, in order.
    fn lines_starting<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    static LINEAR: FlowGraph = FlowGraph {
        name: "Linear",
        doc: "",
        steps: &[
            step("start", Transition::Linear(1)),
            step("a", Transition::Linear(2)),
            step("end", Transition::End),
        ],
        start: 0,
        end: 2,
    };

    #[test]
    fn linear_text_is_exact() {
        let expected = "\
Flow Linear

Step start (linear)
    → a

Step a (linear)
    → end

Step end (end)
    (end of the flow)
";
        assert_eq!(LINEAR.to_text(), expected);
    }

    #[test]
    fn linear_dot_is_exact() {
        let expected = r#"digraph "Linear" {
    node [fontname="Helvetica"];
    edge [fontname="Helvetica", fontsize=10];

    "start" [label="start\nlinear", shape=ellipse];
    "a" [label="a\nlinear", shape=box, style=rounded];
    "end" [label="end", shape=doublecircle];

    "start" -> "a";
    "a" -> "end";
}
"#;
        assert_eq!(LINEAR.to_dot(), expected);
    }

    #[test]
    fn linear_mermaid_is_exact() {
        let expected = r#"flowchart TD
    start(["start<br/>linear"])
    a["a<br/>linear"]
    _end((("end")))
    start --> a
    a --> _end
"#;
        assert_eq!(LINEAR.to_mermaid(), expected);
    }

    /// Declared out of execution order on purpose: `end` first, the join before its branches.
    static BRANCH: FlowGraph = FlowGraph {
        name: "Branchy",
        doc: "Two branches\nthat meet again.\n",
        steps: &[
            step("end", Transition::End),
            join("both", 3, Transition::Linear(0)),
            step("right", Transition::Linear(1)),
            step("start", Transition::Branch(&[4, 2])),
            step("left", Transition::Linear(1)),
        ],
        start: 3,
        end: 0,
    };

    #[test]
    fn text_is_topological_with_ties_in_declaration_order() {
        let text = BRANCH.to_text();
        let headings = lines_starting(&text, "Step ");
        assert_eq!(
            headings,
            [
                "Step start (branch)",
                // `right` is declared before `left`, so it wins the tie between the branches.
                "Step right (linear)",
                "Step left (linear)",
                "Step both (join)",
                "Step end (end)",
            ]
        );
        assert!(
            text.starts_with("Flow Branchy\n    Two branches\n    that meet again.\n\n"),
            "{text}"
        );
        // The transition keeps the order it was written in, not the declaration order.
        assert_line(&text, "    → left, right (branches)");
        assert_line(&text, "    join of the split at `start`");
    }

    #[test]
    fn branch_dot_and_mermaid() {
        let dot = BRANCH.to_dot();
        assert_line(
            &dot,
            r#"    "start" [label="start\nbranch", shape=ellipse];"#,
        );
        assert_line(
            &dot,
            r#"    "both" [label="both\njoin", shape=invtrapezium];"#,
        );
        let edges = lines_starting(&dot, "    \"")
            .into_iter()
            .filter(|l| l.contains("->"))
            .collect::<Vec<_>>();
        assert_eq!(
            edges,
            [
                r#"    "start" -> "left";"#,
                r#"    "start" -> "right";"#,
                r#"    "right" -> "both";"#,
                r#"    "left" -> "both";"#,
                r#"    "both" -> "end";"#,
            ]
        );

        let mermaid = BRANCH.to_mermaid();
        assert_line(&mermaid, r#"    both[\"both<br/>join"/]"#);
        assert_line(&mermaid, "    start --> left");
        assert_line(&mermaid, "    both --> _end");
        assert!(!mermaid.contains(" end"), "{mermaid}");
    }

    static FOREACH: FlowGraph = FlowGraph {
        name: "Squares",
        doc: "",
        steps: &[
            step(
                "start",
                Transition::Foreach {
                    field: "xs",
                    body: 1,
                },
            ),
            step("square", Transition::Linear(2)),
            join("gather", 0, Transition::Linear(3)),
            step("end", Transition::End),
        ],
        start: 0,
        end: 3,
    };

    #[test]
    fn foreach_in_all_three() {
        let text = FOREACH.to_text();
        assert_line(&text, "    → square for each element of `xs`");
        assert_line(
            &text,
            "    body of the foreach at `start`: one task per element of `xs`",
        );
        assert_line(&text, "    join of the split at `start`");

        let dot = FOREACH.to_dot();
        assert_line(&dot, r#"    "start" -> "square" [label="foreach xs"];"#);
        assert_line(&dot, r#"    "square" -> "gather";"#);

        let mermaid = FOREACH.to_mermaid();
        assert_line(&mermaid, r#"    start -->|"foreach xs"| square"#);
        assert_line(&mermaid, r#"    gather[\"gather<br/>join"/]"#);
    }

    static SWITCH: FlowGraph = FlowGraph {
        name: "Router",
        doc: "",
        steps: &[
            step("start", Transition::Linear(1)),
            step(
                "decide",
                Transition::Switch(&[
                    SwitchArm {
                        pattern: r#""big" | "huge""#,
                        target: 2,
                    },
                    SwitchArm {
                        pattern: r#"Path(p) if p == "a\\b""#,
                        target: 3,
                    },
                    SwitchArm {
                        pattern: "_",
                        target: 3,
                    },
                ]),
            ),
            step("big", Transition::Linear(4)),
            step("small", Transition::Linear(4)),
            step("end", Transition::End),
        ],
        start: 0,
        end: 4,
    };

    #[test]
    fn switch_text_shows_patterns_verbatim() {
        let text = SWITCH.to_text();
        assert_line(
            &text,
            r#"    → switch: "big" | "huge" ⇒ big, Path(p) if p == "a\\b" ⇒ small, _ ⇒ small"#,
        );
        assert_line(&text, "Step decide (switch)");
    }

    #[test]
    fn switch_dot_escapes_quotes_and_backslashes() {
        let dot = SWITCH.to_dot();
        assert_line(
            &dot,
            r#"    "decide" [label="decide\nswitch", shape=diamond];"#,
        );
        assert_line(
            &dot,
            r#"    "decide" -> "big" [label="\"big\" | \"huge\"", style=dashed];"#,
        );
        assert_line(
            &dot,
            r#"    "decide" -> "small" [label="Path(p) if p == \"a\\\\b\"", style=dashed];"#,
        );
        assert_line(
            &dot,
            r#"    "decide" -> "small" [label="_", style=dashed];"#,
        );
    }

    #[test]
    fn switch_mermaid_escapes_quotes() {
        let mermaid = SWITCH.to_mermaid();
        assert_line(&mermaid, r#"    decide{"decide<br/>switch"}"#);
        assert_line(
            &mermaid,
            r##"    decide -->|"#quot;big#quot; | #quot;huge#quot;"| big"##,
        );
        assert_line(
            &mermaid,
            r#"    decide -->|"Path(p) if p == #quot;a\\b#quot;"| small"#,
        );
        // Inside each label, nothing is left that would end the quoted string early.
        for line in mermaid.lines().filter(|l| l.contains("-->|")) {
            assert_eq!(line.matches('"').count(), 2, "{line}");
        }
    }

    static OPTIONS: FlowGraph = FlowGraph {
        name: "Careful",
        doc: "",
        steps: &[
            StepSpec {
                name: "start",
                doc: "Fetches the data.\n\nThe network is flaky, hence the retries.",
                transition: Transition::Linear(1),
                join: None,
                options: StepOptions {
                    retries: 3,
                    timeout: Some(Duration::from_secs(90)),
                    catch: Some(CatchSpec {
                        field: Some("error"),
                    }),
                    max_iterations: None,
                    resources: Resources::NONE,
                },
            },
            StepSpec {
                name: "train",
                doc: "Says \"hi\".",
                transition: Transition::Linear(2),
                join: None,
                options: StepOptions {
                    retries: 0,
                    timeout: Some(Duration::from_millis(1500)),
                    catch: Some(CatchSpec { field: None }),
                    max_iterations: None,
                    resources: Resources {
                        cpus: Some(8),
                        memory_bytes: Some(64 << 30),
                        gpus: Some(1),
                    },
                },
            },
            step("end", Transition::End),
        ],
        start: 0,
        end: 2,
    };

    #[test]
    fn options_and_docs_in_text() {
        let expected = "\
Flow Careful

Step start (linear)
    Fetches the data.

    The network is flaky, hence the retries.
    options: retries = 3, timeout = 1m30s, catch = error
    → train

Step train (linear)
    Says \"hi\".
    options: timeout = 1500ms, catch
    resources: 8 cpus, 64 GiB, 1 gpu
    → end

Step end (end)
    (end of the flow)
";
        assert_eq!(OPTIONS.to_text(), expected);
    }

    #[test]
    fn dot_tooltip_is_the_escaped_doc() {
        let dot = OPTIONS.to_dot();
        assert_line(
            &dot,
            r#"    "train" [label="train\nlinear\n8 cpus, 64 GiB, 1 gpu", shape=box, style=rounded, tooltip="Says \"hi\"."];"#,
        );
        assert!(
            dot.contains(r#"tooltip="Fetches the data.\n\nThe network"#),
            "{dot}"
        );
    }

    #[test]
    fn resources_are_in_the_mermaid_label() {
        assert_line(
            &OPTIONS.to_mermaid(),
            r#"    train["train<br/>linear<br/>8 cpus, 64 GiB, 1 gpu"]"#,
        );
    }

    #[test]
    fn durations_read_like_the_attribute() {
        use super::duration_text;
        assert_eq!(duration_text(Duration::from_secs(30)), "30s");
        assert_eq!(duration_text(Duration::from_secs(300)), "5m");
        assert_eq!(duration_text(Duration::from_secs(5400)), "1h30m");
        assert_eq!(duration_text(Duration::from_secs(3601)), "1h1s");
        assert_eq!(duration_text(Duration::from_millis(250)), "250ms");
        assert_eq!(duration_text(Duration::ZERO), "0s");
    }

    /// Not a graph `#[flow]` would accept: a cycle back to `start`, an unreachable pair, a
    /// dangling index and a self-loop.
    static ODD: FlowGraph = FlowGraph {
        name: "Odd",
        doc: "",
        steps: &[
            step("orphan", Transition::Linear(4)),
            step("start", Transition::Branch(&[2, 99])),
            step("loop", Transition::Linear(1)),
            step("spin", Transition::Linear(3)),
            step("end", Transition::End),
        ],
        start: 1,
        end: 4,
    };

    #[test]
    fn odd_graphs_render_every_step_once() {
        let text = ODD.to_text();
        assert_eq!(
            lines_starting(&text, "Step "),
            [
                "Step start (branch)",
                "Step loop (linear)",
                "Step orphan (linear)",
                "Step end (end)",
                // Only reachable from itself: placed last, by breaking its cycle.
                "Step spin (linear)",
            ]
        );
        assert_line(&text, "    → loop, <missing step #99> (branches)");

        let dot = ODD.to_dot();
        assert_eq!(dot.matches("[label=").count(), 5, "{dot}");
        assert_line(&dot, r#"    "loop" -> "start";"#);
        assert_line(&dot, r#"    "spin" -> "spin";"#);
        assert!(!dot.contains("99"), "{dot}");

        let mermaid = ODD.to_mermaid();
        assert_eq!(mermaid.lines().count(), 1 + 5 + 4, "{mermaid}");
    }

    #[test]
    fn empty_graph_does_not_panic() {
        static EMPTY: FlowGraph = FlowGraph {
            name: "Empty",
            doc: "",
            steps: &[],
            start: 0,
            end: 0,
        };
        assert_eq!(EMPTY.to_text(), "Flow Empty\n");
        assert_eq!(EMPTY.to_mermaid(), "flowchart TD\n");
        assert!(EMPTY.to_dot().starts_with("digraph \"Empty\" {\n"));
    }

    #[test]
    fn mermaid_ids_avoid_keywords_and_collisions() {
        static NAMES: FlowGraph = FlowGraph {
            name: "Names",
            doc: "",
            steps: &[
                step("start", Transition::Linear(1)),
                step("styles", Transition::Linear(2)),
                step("_end", Transition::Linear(3)),
                step("classify", Transition::Linear(4)),
                step("end", Transition::End),
            ],
            start: 0,
            end: 4,
        };
        let mermaid = NAMES.to_mermaid();
        assert_line(&mermaid, "    start --> _styles");
        assert_line(&mermaid, "    _styles --> _end");
        assert_line(&mermaid, "    _end --> _classify");
        assert_line(&mermaid, "    _classify --> _end_");
        assert_line(&mermaid, r#"    _end_((("end")))"#);
        assert_line(&mermaid, r#"    _styles["styles<br/>linear"]"#);
    }
}

#[cfg(test)]
mod loop_tests {
    use super::super::{FlowGraph, StepOptions, StepSpec, SwitchArm, Transition};

    const fn step(name: &'static str, transition: Transition, max: Option<u32>) -> StepSpec {
        StepSpec {
            name,
            doc: "",
            transition,
            join: None,
            options: StepOptions {
                retries: 0,
                timeout: None,
                catch: None,
                max_iterations: max,
                resources: super::super::Resources::NONE,
            },
        }
    }

    const TRAIN: FlowGraph = FlowGraph {
        name: "Train",
        doc: "",
        steps: &[
            step("start", Transition::Linear(1), None),
            step("fit", Transition::Linear(2), None),
            step(
                "check",
                Transition::Switch(&[
                    SwitchArm {
                        pattern: "true",
                        target: 1,
                    },
                    SwitchArm {
                        pattern: "false",
                        target: 3,
                    },
                ]),
                Some(10),
            ),
            step("end", Transition::End, None),
        ],
        start: 0,
        end: 3,
    };

    #[test]
    fn a_loop_is_shown_with_its_head_back_arm_and_limit() {
        let text = TRAIN.to_text();
        for line in [
            "    head of a loop: each pass starts here; `check` can go back for another",
            "    options: max_iterations = 10",
            "    → switch: true ⇒ fit (loop), false ⇒ end",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
        // Listed in the order a run goes: the back arm does not put `check` before `fit`.
        let order: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("Step "))
            .collect();
        assert_eq!(
            order,
            [
                "start (linear)",
                "fit (linear)",
                "check (switch)",
                "end (end)"
            ]
        );
        let dot = TRAIN.to_dot();
        assert!(
            dot.contains(
                "\"check\" -> \"fit\" [label=\"true (loop)\", style=dashed, constraint=false];"
            ),
            "{dot}"
        );
        let mermaid = TRAIN.to_mermaid();
        assert!(
            mermaid.contains("check -.->|\"true (loop)\"| fit"),
            "{mermaid}"
        );
    }
}
