//! `#[flow]` from tokens to tokens: parse, check, expand.
//!
//! Kept free of `proc_macro` so that unit tests and the expansion benchmark can call it.

use proc_macro2::TokenStream;

use crate::errors::Errors;
use crate::fallback::Fallback;
use crate::{check, expand, parse};

/// Expands `#[flow(attr)] item`.
pub fn expand_flow(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::new();
    let Some(flow) = parse::parse_flow(attr, item.clone(), &mut errors) else {
        return rejected(errors.check(), Fallback::Input(item));
    };
    let graph = if flow.kind.is_checked() {
        check::check(&flow, &mut errors)
    } else {
        None
    };
    match (errors.check(), graph) {
        (Ok(()), Some(graph)) => expand::expand(&flow, &graph),
        // Without an error of its own the graph is refused only for two steps of one name,
        // which rustc reports as a duplicate method.
        (checked, _) => rejected(checked, Fallback::for_flow(&flow)),
    }
}

/// The errors, if any, and the fallback.
fn rejected(checked: syn::Result<()>, fallback: Fallback) -> TokenStream {
    let errors = checked.err().map(syn::Error::into_compile_error);
    quote::quote!(#errors #fallback)
}

/// Expands `#[step]` used outside a `#[flow]` impl: the error, and the item unchanged.
pub fn expand_stray_step(item: TokenStream) -> TokenStream {
    let error = syn::Error::new(
        proc_macro2::Span::call_site(),
        "#[step] only works on methods of an `impl` block marked #[flow]",
    )
    .to_compile_error();
    quote::quote!(#error #item)
}
