//! A run's graph drawn as SVG: steps in layers by their longest path from `start`, each box
//! coloured by how its tasks stand.

use std::collections::BTreeMap;

use flow_runtime::run::GraphRecord;

/// How a step's tasks stand, as its box is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepState {
    /// Every task it has is complete (succeeded or caught).
    Done,
    /// A task failed.
    Failed,
    /// Some tasks are not complete yet and none failed.
    Running,
    /// The run has no task of the step.
    NotStarted,
}

impl StepState {
    /// The CSS class of the step's box, also shown as text.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StepState::Done => "done",
            StepState::Failed => "failed",
            StepState::Running => "running",
            StepState::NotStarted => "not-started",
        }
    }
}

/// In `status.json`, a state is its CSS class: what the run page's script sets.
impl serde::Serialize for StepState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// What a step's box says under its name: `3 tasks · done`.
pub(crate) fn label(state: StepState, tasks: usize) -> String {
    format!(
        "{tasks} task{} · {}",
        if tasks == 1 { "" } else { "s" },
        state.as_str().replace('-', " ")
    )
}

/// What the drawing needs of one step.
pub(crate) struct StepDrawn {
    pub state: StepState,
    pub tasks: usize,
    pub href: String,
}

/// One box.
pub(crate) struct Node {
    pub name: String,
    pub href: String,
    pub class: &'static str,
    pub label: String,
    pub x: usize,
    pub y: usize,
    pub text_x: usize,
    pub name_y: usize,
    pub label_y: usize,
}

/// One arrow, from the bottom of a box to the top of the next; a loop's arm going back is a
/// dashed curve on the right, from the switch's side to its head's.
pub(crate) struct Edge {
    pub x1: usize,
    pub y1: usize,
    pub x2: usize,
    pub y2: usize,
    /// For an arm going back, the curve's SVG path.
    pub back: Option<String>,
}

/// The whole drawing.
pub(crate) struct Dag {
    pub width: usize,
    pub height: usize,
    pub box_width: usize,
    pub box_height: usize,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

const BOX_HEIGHT: usize = 46;
const GAP_X: usize = 24;
const GAP_Y: usize = 40;
const MARGIN: usize = 12;
/// Each character of a step's name, at the drawing's font size.
const CHAR_WIDTH: usize = 8;

/// Each step's successors, by index, in the order the step names them, without repeats.
fn successors(graph: &GraphRecord) -> Vec<Vec<usize>> {
    let index = step_indices(graph);
    graph
        .steps
        .iter()
        .map(|s| {
            let mut next: Vec<usize> = Vec::new();
            for n in s.next.iter().filter_map(|n| index.get(n.as_str()).copied()) {
                if !next.contains(&n) {
                    next.push(n);
                }
            }
            next
        })
        .collect()
}

/// The edges that go back: a loop's arms returning to its head. Found by a depth-first walk from
/// the first step (`start` leads the stored graph), then from any step not reached: an edge to a
/// step still on the walk's path goes back. For a flow's graph, where a loop has one way in,
/// these are exactly its back arms whatever the order of the walk.
pub(crate) fn back_edges(graph: &GraphRecord) -> Vec<(usize, usize)> {
    let successors = successors(graph);
    let n = successors.len();
    let mut state = vec![0u8; n]; // 0 new, 1 on the path, 2 done
    let mut back = Vec::new();
    for root in 0..n {
        if state[root] != 0 {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        state[root] = 1;
        while let Some((node, cursor)) = path.last_mut() {
            let node = *node;
            let Some(&next) = successors[node].get(*cursor) else {
                state[node] = 2;
                path.pop();
                continue;
            };
            *cursor += 1;
            match state[next] {
                0 => {
                    state[next] = 1;
                    path.push((next, 0));
                }
                1 => back.push((node, next)),
                _ => {}
            }
        }
    }
    back
}

/// The layer of each step (by index into `graph.steps`): 0 for steps nothing leads to (`start`),
/// then one more than the deepest step leading to it, not counting the arms of loops that go
/// back. Steps on any other cycle, which a stored graph might have though no flow can, go below
/// everything else instead of looping.
pub(crate) fn layers(graph: &GraphRecord) -> Vec<usize> {
    let back = back_edges(graph);
    let successors: Vec<Vec<usize>> = successors(graph)
        .into_iter()
        .enumerate()
        .map(|(i, next)| {
            next.into_iter()
                .filter(|&n| !back.contains(&(i, n)))
                .collect()
        })
        .collect();
    let mut incoming = vec![0usize; graph.steps.len()];
    for next in &successors {
        for &n in next {
            incoming[n] += 1;
        }
    }
    let mut layer = vec![0usize; graph.steps.len()];
    let mut placed = vec![false; graph.steps.len()];
    // Kahn's algorithm in the graph's order: deterministic, and each step is placed after every
    // step leading to it, so its layer is its longest path.
    let mut ready: Vec<usize> = (0..graph.steps.len())
        .filter(|&i| incoming[i] == 0)
        .rev()
        .collect();
    while let Some(i) = ready.pop() {
        placed[i] = true;
        for &n in &successors[i] {
            layer[n] = layer[n].max(layer[i] + 1);
            incoming[n] -= 1;
            if incoming[n] == 0 {
                ready.push(n);
            }
        }
    }
    let below = layer
        .iter()
        .zip(&placed)
        .filter(|(_, p)| **p)
        .map(|(l, _)| l + 1)
        .max()
        .unwrap_or(0);
    for (l, p) in layer.iter_mut().zip(&placed) {
        if !p {
            *l = below;
        }
    }
    layer
}

/// Lays `graph` out; `drawn` says, for each of its steps in order, how it stands.
pub(crate) fn draw(graph: &GraphRecord, drawn: &[StepDrawn]) -> Dag {
    let layer = layers(graph);
    let longest = graph
        .steps
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0)
        .min(40);
    let box_width = (longest * CHAR_WIDTH + 24).max(120);
    let depth = layer.iter().map(|l| l + 1).max().unwrap_or(0);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for (i, &l) in layer.iter().enumerate() {
        rows[l].push(i);
    }
    let widest = rows.iter().map(Vec::len).max().unwrap_or(0);
    let back = back_edges(graph);
    // How far right each loop's curve goes: further for longer loops, so that nested loops'
    // curves do not lie on each other.
    let bulge = |i: usize, j: usize| 16 + 12 * layer[i].abs_diff(layer[j]).min(5);
    let loop_room = back
        .iter()
        .map(|&(i, j)| bulge(i, j) + 8)
        .max()
        .unwrap_or(0);
    let width = 2 * MARGIN + widest * box_width + widest.saturating_sub(1) * GAP_X + 2 * loop_room;
    let height = 2 * MARGIN + depth * BOX_HEIGHT + depth.saturating_sub(1) * GAP_Y;
    let mut position = vec![(0usize, 0usize); graph.steps.len()];
    for (l, row) in rows.iter().enumerate() {
        let row_width = row.len() * box_width + row.len().saturating_sub(1) * GAP_X;
        let left = (width - row_width) / 2;
        for (k, &i) in row.iter().enumerate() {
            position[i] = (
                left + k * (box_width + GAP_X),
                MARGIN + l * (BOX_HEIGHT + GAP_Y),
            );
        }
    }
    let nodes = graph
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let (x, y) = position[i];
            let (class, label, href) = match drawn.get(i) {
                Some(d) => (d.state.as_str(), label(d.state, d.tasks), d.href.clone()),
                None => ("not-started", String::new(), String::new()),
            };
            Node {
                name: step.name.clone(),
                href,
                class,
                label,
                x,
                y,
                text_x: x + box_width / 2,
                name_y: y + 19,
                label_y: y + 37,
            }
        })
        .collect();
    let mut edges = Vec::new();
    for (i, next) in successors(graph).into_iter().enumerate() {
        for j in next {
            let (x1, y1) = position[i];
            let (x2, y2) = position[j];
            let back = back.contains(&(i, j)).then(|| {
                // From the middle of the switch's right side, bulging right, into the middle
                // of the head's right side (the same side for a step that goes back to itself).
                let (sx, sy) = (x1 + box_width, y1 + BOX_HEIGHT / 2 + 6);
                let (tx, ty) = (x2 + box_width, y2 + BOX_HEIGHT / 2 - 6);
                let bulge = sx.max(tx) + bulge(i, j);
                format!("M{sx},{sy} C{bulge},{sy} {bulge},{ty} {tx},{ty}")
            });
            edges.push(Edge {
                x1: x1 + box_width / 2,
                y1: y1 + BOX_HEIGHT,
                x2: x2 + box_width / 2,
                y2,
                back,
            });
        }
    }
    Dag {
        width,
        height,
        box_width,
        box_height: BOX_HEIGHT,
        nodes,
        edges,
    }
}

/// Each step's index in `graph.steps`, by name.
fn step_indices(graph: &GraphRecord) -> BTreeMap<&str, usize> {
    graph
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flow_runtime::run::StepRecord;

    fn graph(steps: &[(&str, &[&str])]) -> GraphRecord {
        GraphRecord {
            steps: steps
                .iter()
                .map(|(name, next)| StepRecord {
                    name: (*name).to_owned(),
                    kind: "linear".to_owned(),
                    doc: String::new(),
                    next: next.iter().map(|n| (*n).to_owned()).collect(),
                    foreach: None,
                    join_of: None,
                    resources: Default::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn each_step_sits_one_below_its_deepest_parent() {
        // start → a → b → join, start → join: join is on layer 3, not 1.
        let g = graph(&[
            ("start", &["a", "join"]),
            ("a", &["b"]),
            ("b", &["join"]),
            ("join", &["end"]),
            ("end", &[]),
        ]);
        assert_eq!(layers(&g), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_loop_going_back_keeps_its_steps_in_order_and_is_drawn_as_a_curve() {
        // start → fit → check, check back to fit or on to end; `polish` back to itself.
        let g = graph(&[
            ("start", &["fit"]),
            ("fit", &["check"]),
            ("check", &["fit", "polish"]),
            ("polish", &["polish", "end"]),
            ("end", &[]),
        ]);
        assert_eq!(back_edges(&g), vec![(2, 1), (3, 3)]);
        assert_eq!(layers(&g), vec![0, 1, 2, 3, 4]);
        let dag = draw(&g, &[]);
        let curves: Vec<&Edge> = dag.edges.iter().filter(|e| e.back.is_some()).collect();
        assert_eq!(curves.len(), 2);
        assert_eq!(dag.edges.len(), 6);
        // Every curve stays inside the drawing.
        for edge in curves {
            let d = edge.back.as_deref().unwrap_or_default();
            let points: Vec<(usize, usize)> = d
                .split([' ', 'M', 'C'])
                .filter_map(|p| p.split_once(','))
                .filter_map(|(x, y)| Some((x.parse().ok()?, y.parse().ok()?)))
                .collect();
            assert_eq!(points.len(), 4, "{d}");
            assert!(
                points
                    .iter()
                    .all(|&(x, y)| x <= dag.width && y <= dag.height),
                "{d} in {}×{}",
                dag.width,
                dag.height
            );
        }
    }

    #[test]
    fn a_cycle_in_a_stored_graph_does_not_loop() {
        // No flow has this (a cycle whose head is not the only way in), but a stored graph
        // could: it is drawn, whatever the layers.
        let g = graph(&[("start", &["a", "b"]), ("a", &["b"]), ("b", &["a"])]);
        // The walk reaches `b` through `a`, so `b → a` is the edge left out of the layering.
        assert_eq!(back_edges(&g), vec![(2, 1)]);
        assert_eq!(layers(&g), vec![0, 1, 2]);
        let dag = draw(&g, &[]);
        assert_eq!(dag.nodes.len(), 3);
    }
}
