//! Phase one: read the impl block and the `#[flow]` and `#[step]` attributes into the model.
//!
//! Everything wrong with an attribute's own syntax is reported here; whether the steps form a
//! valid graph is the check phase's job. [`impl_block`] walks the impl and takes the `#[step]`
//! attributes off its methods, [`signature`] reads a step method's signature, [`flow_attr`] and
//! [`step_attr`] read the two attributes' options.

mod flow_attr;
mod impl_block;
mod resources;
mod signature;
mod step_attr;

pub use impl_block::parse_flow;

/// `a`, `b` and `c` as "`a`, `b`, `c`": the options an attribute accepts, in its errors.
fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
