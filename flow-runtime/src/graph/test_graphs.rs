//! Graphs shared by the tests of the graph analyses and of what is built on them.

use super::{FlowGraph, StepOptions, StepSpec, SwitchArm, Transition};

/// A step without options or doc.
pub(crate) const fn step(
    name: &'static str,
    transition: Transition,
    join: Option<usize>,
) -> StepSpec {
    StepSpec {
        name,
        doc: "",
        transition,
        join,
        options: StepOptions {
            retries: 0,
            timeout: None,
            catch: None,
            max_iterations: None,
            resources: super::Resources::NONE,
        },
    }
}

/// A switch arm to step `target`.
pub(crate) const fn arm(target: usize) -> SwitchArm {
    SwitchArm {
        pattern: "_",
        target,
    }
}

/// start → [a, b] → both → fan (foreach) → inner (foreach) → body → inner_join →
/// outer_join → decide (switch: big | small) → end
const EVERY_STEPS: &[StepSpec] = &[
    step("start", Transition::Branch(&[1, 2]), None),
    step("a", Transition::Linear(3), None),
    step("b", Transition::Linear(3), None),
    step("both", Transition::Linear(4), Some(0)),
    step(
        "fan",
        Transition::Foreach {
            field: "xs",
            body: 5,
        },
        None,
    ),
    step(
        "inner",
        Transition::Foreach {
            field: "ys",
            body: 6,
        },
        None,
    ),
    step("body", Transition::Linear(7), None),
    step("inner_join", Transition::Linear(8), Some(5)),
    step("outer_join", Transition::Linear(9), Some(4)),
    step(
        "decide",
        Transition::Switch(&[
            SwitchArm {
                pattern: "R::Big",
                target: 10,
            },
            SwitchArm {
                pattern: "R::Small",
                target: 11,
            },
        ]),
        None,
    ),
    step("big", Transition::Linear(12), None),
    step("small", Transition::Linear(12), None),
    step("end", Transition::End, None),
];

/// Every kind of step once: a branch, nested foreaches, a switch.
pub(crate) const EVERY: FlowGraph = FlowGraph {
    name: "Every",
    doc: "",
    steps: EVERY_STEPS,
    start: 0,
    end: 12,
};

const fn any_arm(target: usize) -> SwitchArm {
    SwitchArm {
        pattern: "_",
        target,
    }
}

/// start → switch (fast | fast | slow) → end: two arms of one switch lead to one step.
pub(crate) const TWO_ARMS_TO_ONE_STEP: FlowGraph = FlowGraph {
    name: "Route",
    doc: "",
    steps: &[
        step(
            "start",
            Transition::Switch(&[any_arm(1), any_arm(1), any_arm(2)]),
            None,
        ),
        step("fast", Transition::Linear(3), None),
        step("slow", Transition::Linear(3), None),
        step("end", Transition::End, None),
    ],
    start: 0,
    end: 3,
};
