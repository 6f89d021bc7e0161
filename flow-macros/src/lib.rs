//! The `#[flow]` and `#[step]` attribute macros of blooming-flowers.
//!
//! Use them through the `blooming-flowers` crate, which re-exports them with the runtime they
//! generate code for. `#[flow]` works in three phases, one private module each: `parse` reads the
//! impl block, `check` rejects every graph mistake on the token at fault, `expand` writes the
//! `Flow` implementation (or, after an error, a `fallback` that keeps use sites quiet).

#![warn(missing_docs)]

mod build_info;
mod check;
mod errors;
mod expand;
mod fallback;
mod flow_macro;
mod model;
mod parse;
mod suggest;

use proc_macro::TokenStream;

/// Turns an `impl` block into a flow: its `#[step]` methods become the steps of a typed DAG.
///
/// See the `blooming-flowers` crate for the syntax.
#[proc_macro_attribute]
pub fn flow(attr: TokenStream, item: TokenStream) -> TokenStream {
    let input = item.clone();
    guarded(|| flow_macro::expand_flow(attr.into(), input.into()), item)
}

/// Marks a method of a `#[flow]` impl as a step. `#[flow]` consumes it; anywhere else it is an
/// error.
#[proc_macro_attribute]
pub fn step(_attr: TokenStream, item: TokenStream) -> TokenStream {
    let input = item.clone();
    guarded(|| flow_macro::expand_stray_step(input.into()), item)
}

/// Runs a macro body, turning a panic (a bug in this crate) into a compile error instead of an
/// internal compiler error, with the user's item left in place.
fn guarded(body: impl FnOnce() -> proc_macro2::TokenStream, item: TokenStream) -> TokenStream {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(tokens) => tokens.into(),
        Err(_) => {
            let error = syn::Error::new(
                proc_macro2::Span::call_site(),
                "internal error in blooming-flowers' #[flow] macro; please report it with this flow's code",
            )
            .to_compile_error();
            let item: proc_macro2::TokenStream = item.into();
            quote::quote!(#error #item).into()
        }
    }
}
