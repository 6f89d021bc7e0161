//! `#[flow]` from tokens to tokens: parse, check, expand.
//!
//! Kept free of `proc_macro` so that unit tests and the expansion benchmark can call it.

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::errors::Errors;
use crate::{check, expand, parse};

/// Expands `#[flow(attr)] item`.
pub fn expand_flow(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let Some(flow) = parse::parse_flow(attr, item.clone(), &mut errors) else {
        // Not an impl block: there is nothing sensible to emit but the error and the input.
        let compile_errors = errors.to_compile_errors();
        return quote::quote!(#compile_errors #item);
    };
    let graph = if flow.checkable {
        check::check(&flow, &mut errors)
    } else {
        None
    };
    match graph {
        Some(graph) if errors.is_empty() => expand::expand(&flow, &graph),
        _ => {
            let compile_errors = errors.to_compile_errors();
            let fallback = if flow.fallback_ok {
                expand::fallback(&flow)
            } else {
                flow.item.to_token_stream()
            };
            quote::quote!(#compile_errors #fallback)
        }
    }
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
