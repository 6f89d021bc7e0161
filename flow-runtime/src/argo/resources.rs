//! A step's `resources(...)` as its container's Kubernetes `resources`.
//!
//! | `resources(...)` | `requests` | `limits` |
//! |---|---|---|
//! | `cpus = N` | `cpu: "N"` | none |
//! | `memory = "64 GiB"` | `memory: 64Gi` | `memory: 64Gi` |
//! | `gpus = N` (N > 0) | none (Kubernetes sets it to the limit) | `nvidia.com/gpu: "N"` |
//!
//! Why: a cpu request reserves the cores on the node the pod is scheduled to; a cpu limit would
//! only throttle the task's threads when they burst past it (CFS quota), slowing the step for no
//! one's benefit, so there is none. Memory cannot be throttled, only reclaimed by killing: the
//! limit equals the request, so a task that outgrows what it declared is killed as out of memory
//! (`OOMKilled`, which the run reports) rather than pushing other pods off the node. GPUs are an
//! extended resource, which Kubernetes allows in limits alone (the request is then the same).

use std::collections::BTreeMap;

use super::manifest::ResourceRequirements;
use crate::graph::Resources;

/// The resource name NVIDIA's device plugin registers GPUs under.
pub(super) const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// The container `resources` of a step asking `resources`; `None` when it asks nothing.
pub(super) fn requirements(resources: &Resources) -> Option<ResourceRequirements> {
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    if let Some(cpus) = resources.cpus {
        requests.insert("cpu".to_owned(), cpus.to_string());
    }
    if let Some(memory) = resources.memory_quantity() {
        requests.insert("memory".to_owned(), memory.clone());
        limits.insert("memory".to_owned(), memory);
    }
    if let Some(gpus) = resources.gpus.filter(|&n| n > 0) {
        limits.insert(GPU_RESOURCE.to_owned(), gpus.to_string());
    }
    (!requests.is_empty() || !limits.is_empty())
        .then_some(ResourceRequirements { requests, limits })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_are_requested_memory_requested_and_limited_gpus_limited() {
        let r = requirements(&Resources {
            cpus: Some(8),
            memory_bytes: Some(64 << 30),
            gpus: Some(1),
        })
        .expect("something is asked");
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(r.requests, map(&[("cpu", "8"), ("memory", "64Gi")]));
        assert_eq!(
            r.limits,
            map(&[("memory", "64Gi"), ("nvidia.com/gpu", "1")])
        );
    }

    #[test]
    fn nothing_asked_is_no_resources_field() {
        assert_eq!(requirements(&Resources::NONE), None);
        let no_gpu = Resources {
            gpus: Some(0),
            ..Resources::NONE
        };
        assert_eq!(requirements(&no_gpu), None);
    }
}
