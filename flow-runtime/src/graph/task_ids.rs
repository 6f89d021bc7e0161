//! The shape of task ids: one part per foreach a task runs inside (the element's index) and per
//! loop it runs inside (the pass, as `i2`), outermost first, joined by `-`; `0` outside any. The
//! scheduler numbers tasks so, and the derivation of a task's spec and the Argo fan-outs read and
//! write the same ids.

/// One part of a task id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdPart {
    /// The index of the element of a foreach: `3`.
    Element(usize),
    /// The pass of a loop, from 0: `i3`.
    Pass(usize),
}

/// What a part of a task id counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdKind {
    /// A foreach's elements.
    Element,
    /// A loop's passes.
    Pass,
}

impl IdPart {
    /// The part of kind `kind` holding `n`.
    pub(crate) fn of(kind: IdKind, n: usize) -> IdPart {
        match kind {
            IdKind::Element => IdPart::Element(n),
            IdKind::Pass => IdPart::Pass(n),
        }
    }
}

/// The task id of the task with parts `parts` (outermost first): `0` outside any foreach or
/// loop, as the scheduler numbers them.
pub(crate) fn task_id_of(parts: &[IdPart]) -> String {
    if parts.is_empty() {
        return "0".to_string();
    }
    parts
        .iter()
        .map(|p| match p {
            IdPart::Element(n) => n.to_string(),
            IdPart::Pass(n) => format!("i{n}"),
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The numbers of a task id of a step whose id has parts of kinds `kinds`, if it is one the
/// scheduler could have made (no signs, no leading zeros).
pub(crate) fn parse_task_id(task_id: &str, kinds: &[IdKind]) -> Option<Vec<usize>> {
    if kinds.is_empty() {
        return (task_id == "0").then(Vec::new);
    }
    let parts: Vec<&str> = task_id.split('-').collect();
    if parts.len() != kinds.len() {
        return None;
    }
    parts
        .iter()
        .zip(kinds)
        .map(|(part, kind)| {
            let digits = match kind {
                IdKind::Element => *part,
                IdKind::Pass => part.strip_prefix('i')?,
            };
            digits
                .parse::<usize>()
                .ok()
                .filter(|n| n.to_string() == digits)
        })
        .collect()
}

/// An example id of the shape `kinds`, for messages: `0-i0`.
pub(crate) fn example_task_id(kinds: &[IdKind]) -> String {
    let parts: Vec<IdPart> = kinds.iter().map(|&k| IdPart::of(k, 0)).collect();
    task_id_of(&parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use IdKind::{Element, Pass};

    #[test]
    fn task_ids_round_trip() {
        assert_eq!(task_id_of(&[]), "0");
        assert_eq!(task_id_of(&[IdPart::Element(3)]), "3");
        assert_eq!(
            task_id_of(&[IdPart::Element(3), IdPart::Element(0), IdPart::Element(12)]),
            "3-0-12"
        );
        assert_eq!(task_id_of(&[IdPart::Pass(2)]), "i2");
        assert_eq!(task_id_of(&[IdPart::Element(3), IdPart::Pass(1)]), "3-i1");
        assert_eq!(parse_task_id("0", &[]), Some(vec![]));
        assert_eq!(parse_task_id("1", &[]), None);
        assert_eq!(parse_task_id("7", &[Element]), Some(vec![7]));
        assert_eq!(
            parse_task_id("3-12", &[Element, Element]),
            Some(vec![3, 12])
        );
        assert_eq!(parse_task_id("i4", &[Pass]), Some(vec![4]));
        assert_eq!(parse_task_id("i1-3", &[Pass, Element]), Some(vec![1, 3]));
        for bad in [
            "", "-1", "+1", "01", "1-", "1--2", "a", "1-2-3", "i1-2", "1-i2",
        ] {
            assert_eq!(parse_task_id(bad, &[Element, Element]), None, "{bad:?}");
        }
        for bad in ["4", "i", "i01", "i+1", "ii1", "0"] {
            assert_eq!(parse_task_id(bad, &[Pass]), None, "{bad:?}");
        }
        assert_eq!(parse_task_id("3", &[Element, Element]), None);
        assert_eq!(example_task_id(&[Element, Pass]), "0-i0");
    }
}
