//! What `#[flow]` emits for an invalid flow beside its errors: the user's code minus the
//! attributes the macro consumed, and just enough that code using the type reports nothing
//! more (thiserror's `fallback.rs`, clap's `dummies.rs`).

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ItemImpl;

use crate::expand::dummy_flow_impl;
use crate::model::{FlowDef, ImplKind};

/// The code emitted after an error, by how much of the input `#[flow]` could read.
pub enum Fallback<'a> {
    /// The input as received: it is not an impl block of a named type, so nothing was consumed
    /// from it and there is no type to implement `Flow` for.
    Input(TokenStream),
    /// The impl block without its `#[step]` attributes, and nothing else: a dummy `Flow`
    /// implementation could not satisfy a generic type's parameters, and a type whose `#[flow]`
    /// is on the wrong impl may have its real one elsewhere.
    Impl(&'a ItemImpl),
    /// The impl block without its `#[step]` attributes and a `Flow` implementation with an empty
    /// graph, so that no use of the type adds a "trait `Flow` is not implemented" error.
    ImplWithDummyFlow(&'a FlowDef),
}

impl<'a> Fallback<'a> {
    /// The fallback for a flow that could be parsed, by the kind of its impl block.
    pub fn for_flow(flow: &'a FlowDef) -> Self {
        match flow.kind {
            ImplKind::Flow => Fallback::ImplWithDummyFlow(flow),
            ImplKind::Generic | ImplKind::Misplaced => Fallback::Impl(&flow.item),
        }
    }
}

impl ToTokens for Fallback<'_> {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match self {
            Fallback::Input(input) => input.to_tokens(tokens),
            Fallback::Impl(item) => item.to_tokens(tokens),
            Fallback::ImplWithDummyFlow(flow) => {
                flow.item.to_tokens(tokens);
                tokens.extend(dummy_flow_impl(flow));
            }
        }
    }
}
