//! `#[flow(params = field)]`: the field's type derives `clap::Args`; `run --flags` set it.

use blooming_flowers::prelude::*;
use blooming_flowers::clap;

#[derive(Clone, Default, Serialize, Deserialize, clap::Args)]
struct Settings {
    /// How many items.
    #[arg(long, default_value_t = 3)]
    count: u32,
    /// A name.
    #[arg(long, default_value = "x")]
    name: String,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct WithParams {
    settings: Settings,
    out: u32,
}

#[flow(params = settings)]
impl WithParams {
    #[step(next = end)]
    fn start(&mut self) {
        self.out = self.settings.count * 2;
    }
    #[step]
    fn end(&mut self) {}
}

fn main() {
    let command = <WithParams as Flow>::__params_command(clap::Command::new("run"));
    let matches = command.try_get_matches_from(["run", "--count", "7"]).expect("parses");
    let mut state = WithParams::default();
    let json = state.__apply_params(&matches).expect("applies");
    assert_eq!(state.settings.count, 7);
    assert_eq!(state.settings.name, "x");
    assert_eq!(json["count"], 7);
    let mut other = WithParams::default();
    other.__restore_params(&json).expect("restores");
    assert_eq!(other.settings.count, 7);
}
