//! How long `#[flow]` takes to parse, check and expand a generated 200-step flow.
//!
//! The macro crate is a proc-macro crate, which cannot be linked as a library, so its modules are
//! compiled into this benchmark directly; they only use `proc_macro2`, never `proc_macro`.
//!
//! Run: `cargo bench --bench expansion`.

#![allow(dead_code, unused_imports)]

#[path = "../flow-macros/src/build_info.rs"]
mod build_info;
#[path = "../flow-macros/src/check/mod.rs"]
mod check;
#[path = "../flow-macros/src/errors.rs"]
mod errors;
#[path = "../flow-macros/src/expand.rs"]
mod expand;
#[path = "../flow-macros/src/fallback.rs"]
mod fallback;
#[path = "../flow-macros/src/flow_macro.rs"]
mod flow_macro;
#[path = "../flow-macros/src/model.rs"]
mod model;
#[path = "../flow-macros/src/parse/mod.rs"]
mod parse;
#[path = "../flow-macros/src/suggest.rs"]
mod suggest;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

/// A flow of `blocks` diamonds (split into two branches, then a join), with a foreach every
/// fourth block and a switch every fifth, between `start` and `end`: `4 * blocks + 2` steps.
pub fn generated_flow(blocks: usize) -> TokenStream {
    let mut steps = Vec::new();
    let first = format_ident!("split_0");
    steps.push(quote! {
        /// The first step.
        #[step(next = #first)]
        fn start(&mut self) {}
    });
    for k in 0..blocks {
        let split = format_ident!("split_{k}");
        let left = format_ident!("left_{k}");
        let right = format_ident!("right_{k}");
        let join = format_ident!("join_{k}");
        let after = if k + 1 == blocks {
            format_ident!("end")
        } else {
            format_ident!("split_{}", k + 1)
        };
        if k % 4 == 1 {
            steps.push(quote! {
                #[step(foreach = xs, next = #left)]
                fn #split(&mut self) {}
                #[step(next = #right)]
                fn #left(&mut self, x: u64) { self.n += x; }
                #[step(next = #join)]
                fn #right(&mut self) {}
                #[step(join, next = #after)]
                fn #join(&mut self, inputs: Inputs<Self>) { self.n = inputs.iter().map(|i| i.n).sum(); }
            });
        } else if k % 5 == 2 {
            steps.push(quote! {
                #[step(switch(true => #left, false => #right))]
                fn #split(&mut self) -> bool { self.n % 2 == 0 }
                #[step(next = #join)]
                fn #left(&mut self) {}
                #[step(next = #join)]
                fn #right(&mut self) {}
                /// Where the two arms meet again: no join needed after a switch.
                #[step(next = #after, retries = 2, timeout = "1m")]
                fn #join(&mut self) {}
            });
        } else {
            steps.push(quote! {
                /// Splits in two.
                #[step(next = [#left, #right])]
                fn #split(&mut self) {}
                #[step(next = #join)]
                fn #left(&mut self) { self.n += 1; }
                #[step(next = #join, catch)]
                fn #right(&mut self) -> Result<(), String> { Ok(()) }
                #[step(join, next = #after)]
                fn #join(&mut self, inputs: Inputs<Self>) { self.n = inputs[0].n; }
            });
        }
    }
    steps.push(quote! {
        #[step]
        fn end(&mut self) {}
    });
    quote! {
        impl Generated {
            #(#steps)*
        }
    }
}

fn expansion(c: &mut Criterion) {
    let flow = generated_flow(50);
    let expanded = flow_macro::expand_flow(TokenStream::new(), flow.clone());
    assert!(
        !expanded.to_string().contains("compile_error"),
        "the generated flow must be valid"
    );
    c.bench_function("expand a 202-step flow", |b| {
        b.iter(|| flow_macro::expand_flow(TokenStream::new(), black_box(flow.clone())))
    });
}

criterion_group!(benches, expansion);
criterion_main!(benches);
