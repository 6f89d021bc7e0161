//! The shape of task ids: the foreach indices of a task, outermost first, joined by `-`; `0`
//! outside any foreach. The scheduler numbers tasks so, and the derivation of a task's spec and
//! the Argo fan-outs read and write the same ids.

/// The task id of the task with foreach indices `indices` (outermost first): `0` outside any
/// foreach, as the scheduler numbers them.
pub(crate) fn task_id_of(indices: &[usize]) -> String {
    if indices.is_empty() {
        "0".to_string()
    } else {
        indices
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("-")
    }
}

/// The foreach indices of a task id of a step inside `depth` foreaches, if it is one the
/// scheduler could have made (no signs, no leading zeros).
pub(crate) fn parse_task_id(task_id: &str, depth: usize) -> Option<Vec<usize>> {
    if depth == 0 {
        return (task_id == "0").then(Vec::new);
    }
    let indices: Vec<usize> = task_id
        .split('-')
        .map(|part| part.parse::<usize>().ok().filter(|n| n.to_string() == part))
        .collect::<Option<_>>()?;
    (indices.len() == depth).then_some(indices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_round_trip() {
        assert_eq!(task_id_of(&[]), "0");
        assert_eq!(task_id_of(&[3]), "3");
        assert_eq!(task_id_of(&[3, 0, 12]), "3-0-12");
        assert_eq!(parse_task_id("0", 0), Some(vec![]));
        assert_eq!(parse_task_id("1", 0), None);
        assert_eq!(parse_task_id("7", 1), Some(vec![7]));
        assert_eq!(parse_task_id("3-12", 2), Some(vec![3, 12]));
        for bad in ["", "-1", "+1", "01", "1-", "1--2", "a", "1-2-3"] {
            assert_eq!(parse_task_id(bad, 2), None, "{bad:?}");
        }
        assert_eq!(parse_task_id("3", 2), None);
    }
}
