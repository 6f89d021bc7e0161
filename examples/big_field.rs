//! One large `Vec<u8>` field (serde_bytes) created in `start`, left unchanged by `keep`: what
//! storing a large artifact costs in time and memory. Peak memory:
//! `/usr/bin/time -f "%e s %M KB" target/release/examples/big_field run --mib 1024`.

use blooming_flowers::clap;
use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize, clap::Args)]
struct Size {
    /// The field's size in MiB.
    #[arg(long, default_value_t = 1024)]
    mib: usize,
    /// The size in MiB of a second field, of `f32`s (none by default): what reading a large
    /// numeric vector costs (the Python reader's benchmark).
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    f32_mib: usize,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct BigField {
    size: Size,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    floats: Vec<f32>,
    checksum: u64,
}

#[flow(params = size)]
impl BigField {
    /// Fills the field.
    #[step(next = keep)]
    fn start(&mut self) {
        self.data = (0..self.size.mib << 20).map(|i| (i % 251) as u8).collect();
        self.floats = (0..(self.size.f32_mib << 20) / 4)
            .map(|i| (i % 1000) as f32 * 0.001 - 0.5)
            .collect();
    }

    /// Reads the field without changing it: no new bytes are stored.
    #[step(next = end)]
    fn keep(&mut self) {
        self.checksum = self.data.iter().map(|&b| b as u64).sum();
    }

    #[step]
    fn end(&mut self) {}
}

fn main() -> std::process::ExitCode {
    blooming_flowers::main::<BigField>()
}
