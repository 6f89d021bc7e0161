//! The options of `#[flow(...)]`.

use proc_macro2::TokenStream;
use syn::parse::Parser;

use super::list;
use crate::errors::Errors;
use crate::model::FlowArgs;
use crate::suggest::did_you_mean;

/// The keys `#[flow(...)]` accepts.
const FLOW_OPTIONS: &[&str] = &["params", "crate"];

/// Reads `crate = path, params = field`; a bad option is reported and the others are kept.
pub fn parse_flow_args(attr: TokenStream, errors: &mut Errors) -> FlowArgs {
    let mut args = FlowArgs::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            let path: syn::Path = meta.value()?.parse()?;
            args.krate = Some(path);
            Ok(())
        } else if meta.path.is_ident("params") {
            if args.params.is_some() {
                return Err(meta.error("duplicate #[flow] option `params`"));
            }
            let field: syn::Ident = meta.value()?.call(syn::ext::IdentExt::parse_any)?;
            args.params = Some(field);
            Ok(())
        } else {
            let key = meta
                .path
                .get_ident()
                .map(|i| i.to_string())
                .unwrap_or_default();
            Err(meta.error(format!(
                "unknown #[flow] option `{key}`; the options are {}{}",
                list(FLOW_OPTIONS),
                did_you_mean(&key, FLOW_OPTIONS.iter().copied())
            )))
        }
    });
    if let Err(e) = parser.parse2(attr) {
        errors.push(e);
    }
    args
}
