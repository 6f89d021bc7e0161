//! Steps may return `()` or `Result<(), E>` for any error type a user would use, also through
//! aliases: `Result<(), String>`, an anyhow-like `Result<()>`, `io::Result<()>`.

use std::io;

use blooming_flowers::prelude::*;
use blooming_flowers::StepInput;

/// What `anyhow::Result` looks like.
type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Fallible {
    fail: bool,
}

#[flow]
impl Fallible {
    #[step(next = aliased)]
    fn start(&mut self) -> std::result::Result<(), String> {
        if self.fail { Err("start failed".into()) } else { Ok(()) }
    }

    #[step(next = io)]
    fn aliased(&mut self) -> Result<()> {
        if self.fail { Err("aliased failed".into()) } else { Ok(()) }
    }

    #[step(next = unit)]
    fn io(&mut self) -> io::Result<()> {
        if self.fail { Err(io::Error::other("io failed")) } else { Ok(()) }
    }

    #[step(next = end)]
    fn unit(&mut self) -> () {}

    #[step]
    fn end(&mut self) -> Result<(), &'static str> {
        Ok(())
    }
}

fn main() {
    let mut state = Fallible::default();
    for i in 0..5 {
        assert!(state.__run_step(i, StepInput::Plain).is_ok());
    }
    state.fail = true;
    let messages: Vec<String> =
        (0..3).map(|i| state.__run_step(i, StepInput::Plain).unwrap_err().message).collect();
    assert_eq!(messages, ["start failed", "aliased failed", "io failed"]);
}
