//! What a step asks of the machine it runs on: `#[step(resources(cpus = 8, memory = "64 GiB",
//! gpus = 1))]`, and how it reads in the three places it is shown or used (text, Slurm, Kubernetes).

use std::fmt;

use serde::{Deserialize, Serialize};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// The resources a step declares; each is `None` when the step does not ask for it.
///
/// `Resources::default()` asks for nothing, which is what a step without `resources(...)` has:
/// every executor then behaves as it did before resources existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Resources {
    /// Whole cpus (cores) one task of the step uses: at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory one task of the step needs, in bytes: more than zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// GPUs one task of the step uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
}

impl Resources {
    /// Nothing asked: [`Resources::default`], usable in a `const`.
    pub const NONE: Resources = Resources {
        cpus: None,
        memory_bytes: None,
        gpus: None,
    };

    /// Whether the step asks for nothing at all.
    pub fn is_empty(&self) -> bool {
        self.cpus.is_none() && self.memory_bytes.is_none() && self.gpus.is_none()
    }

    /// The memory in whole MiB, rounded up: Slurm's `--mem=<N>M` must not grant less than asked.
    pub fn memory_mib(&self) -> Option<u64> {
        self.memory_bytes.map(|b| b.div_ceil(MIB))
    }

    /// The memory as a Kubernetes quantity: `64Gi`, `100Mi`, `2G`, or plain bytes (Kubernetes
    /// reads a bare integer as bytes), in the unit [`memory_text`] picks.
    pub fn memory_quantity(&self) -> Option<String> {
        self.memory_bytes.map(|bytes| {
            let (n, unit) = exact_unit(bytes);
            let suffix = match unit {
                "B" => "",
                "KB" => "k",
                other => other.trim_end_matches('B'),
            };
            format!("{n}{suffix}")
        })
    }
}

/// Units of memory, largest first within each family: `(bytes, name)`.
const UNITS: [(u64, &str); 8] = [
    (1 << 40, "TiB"),
    (1 << 30, "GiB"),
    (MIB, "MiB"),
    (KIB, "KiB"),
    (1_000_000_000_000, "TB"),
    (1_000_000_000, "GB"),
    (1_000_000, "MB"),
    (1_000, "KB"),
];

/// `bytes` as the smallest whole number of one unit: `(n, unit)`, `(bytes, "B")` when no unit
/// divides it exactly.
fn exact_unit(bytes: u64) -> (u64, &'static str) {
    UNITS
        .iter()
        .filter(|(size, _)| bytes != 0 && bytes.is_multiple_of(*size))
        .map(|&(size, unit)| (bytes / size, unit))
        .min_by_key(|&(n, _)| n)
        .unwrap_or((bytes, "B"))
}

/// Memory the way a person writes it, in the unit that gives the smallest whole number: `64 GiB`,
/// `100 MiB`, `1536 MiB`, `2 GB`, `1023 B`.
pub fn memory_text(bytes: u64) -> String {
    let (n, unit) = exact_unit(bytes);
    format!("{n} {unit}")
}

/// `8 cpus, 64 GiB, 1 gpu`: what `show` prints after `resources:`; empty when nothing is asked.
impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: u32, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let parts: Vec<String> = [
            self.cpus.map(|n| plural(n, "cpu")),
            self.memory_bytes.map(memory_text),
            self.gpus.map(|n| plural(n, "gpu")),
        ]
        .into_iter()
        .flatten()
        .collect();
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1024 * MIB;

    #[test]
    fn resources_read_as_the_user_wrote_them() {
        let r = Resources {
            cpus: Some(8),
            memory_bytes: Some(64 * GIB),
            gpus: Some(1),
        };
        assert_eq!(r.to_string(), "8 cpus, 64 GiB, 1 gpu");
        let r = Resources {
            cpus: Some(1),
            memory_bytes: None,
            gpus: Some(2),
        };
        assert_eq!(r.to_string(), "1 cpu, 2 gpus");
        assert_eq!(Resources::default().to_string(), "");
        assert!(Resources::default().is_empty());
    }

    #[test]
    fn memory_text_picks_an_exact_unit() {
        assert_eq!(memory_text(100 * MIB), "100 MiB");
        assert_eq!(memory_text(3 * GIB / 2), "1536 MiB");
        assert_eq!(memory_text(2_000_000_000), "2 GB");
        assert_eq!(memory_text(1023), "1023 B");
        assert_eq!(memory_text(0), "0 B");
    }

    #[test]
    fn slurm_memory_is_rounded_up_to_whole_mib() {
        let mib = |bytes| {
            Resources {
                memory_bytes: Some(bytes),
                ..Resources::default()
            }
            .memory_mib()
        };
        assert_eq!(mib(100 * MIB), Some(100));
        assert_eq!(mib(100 * MIB + 1), Some(101));
        assert_eq!(mib(1), Some(1));
        assert_eq!(mib(2_000_000_000), Some(1908));
    }

    #[test]
    fn kubernetes_memory_uses_binary_suffixes_or_bytes() {
        let quantity = |bytes| {
            Resources {
                memory_bytes: Some(bytes),
                ..Resources::default()
            }
            .memory_quantity()
        };
        assert_eq!(quantity(64 * GIB).as_deref(), Some("64Gi"));
        assert_eq!(quantity(100 * MIB).as_deref(), Some("100Mi"));
        assert_eq!(quantity(2_000_000_000).as_deref(), Some("2G"));
        assert_eq!(quantity(8_000).as_deref(), Some("8k"));
        assert_eq!(quantity(1023).as_deref(), Some("1023"));
        assert_eq!(Resources::default().memory_quantity(), None);
    }

    #[test]
    fn an_empty_resources_is_not_written_and_reads_back() {
        let json = serde_json::to_string(&Resources::default()).expect("encode");
        assert_eq!(json, "{}");
        let r = Resources {
            cpus: Some(2),
            memory_bytes: Some(100 * MIB),
            gpus: None,
        };
        let back: Resources =
            serde_json::from_str(&serde_json::to_string(&r).expect("encode")).expect("decode");
        assert_eq!(back, r);
    }
}
