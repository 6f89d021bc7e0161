//! The impl block `#[flow]` is on: its kind, the flow's name and doc, and its methods, split into
//! steps (whose `#[step]` attribute is consumed here) and plain methods.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::{Attribute, Expr, ExprLit, ImplItem, ImplItemFn, ItemImpl, Lit, Meta, Type};

use super::flow_attr::parse_flow_args;
use super::signature::parse_signature;
use super::step_attr::{StepAttr, parse_step_attr};
use crate::errors::Errors;
use crate::model::{FlowDef, ImplKind, StepDef};

/// Parses the `#[flow(...)]` arguments and the impl block.
///
/// Returns `None` when the item is not an impl block of a named type: then nothing was consumed
/// from it, and there is nothing to fall back to but the input itself.
pub fn parse_flow(attr: TokenStream, item: TokenStream, errors: &mut Errors) -> Option<FlowDef> {
    let args = parse_flow_args(attr, errors);
    let mut item: ItemImpl = match syn::parse2(item) {
        Ok(item) => item,
        Err(e) => {
            errors.at(
                e.span(),
                "#[flow] goes on the `impl` block of the flow's struct, e.g. `#[flow] impl MyFlow { … }`",
            );
            return None;
        }
    };
    let mut kind = ImplKind::Flow;
    if let Some((path, for_token)) = item.trait_.take() {
        errors.spanned(
            &path,
            "#[flow] goes on an inherent `impl MyFlow { … }`, not on a trait impl",
        );
        if item
            .items
            .iter()
            .any(|i| matches!(i, ImplItem::Fn(m) if m.attrs.iter().any(is_step_attr)))
        {
            // Steps written in a trait impl (`impl Flow for MyFlow`): read them as the inherent
            // impl that was meant, so the one mistake does not also break every method.
            item.unsafety = None;
        } else {
            // `#[flow]` on some other impl of the type: restore it and check nothing more.
            item.trait_ = Some((path, for_token));
            kind = ImplKind::Misplaced;
        }
    }
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.spanned(
            &item.generics,
            "a flow type cannot be generic: its state is stored and reloaded by name",
        );
        if kind == ImplKind::Flow {
            kind = ImplKind::Generic;
        }
    }
    let name = match &*item.self_ty {
        Type::Path(p) if p.qself.is_none() => p
            .path
            .segments
            .last()
            .map(|s| (s.ident.unraw().to_string(), s.ident.span())),
        _ => None,
    };
    let Some((name, name_span)) = name else {
        errors.spanned(
            &item.self_ty,
            "#[flow] needs the flow's struct as the impl's type, e.g. `impl MyFlow`",
        );
        return None;
    };
    let doc = doc_of(&item.attrs);

    let mut steps = Vec::new();
    let mut plain_methods = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let step_attrs: Vec<usize> = (0..method.attrs.len())
            .filter(|&i| is_step_attr(&method.attrs[i]))
            .collect();
        if step_attrs.is_empty() {
            plain_methods.push(method.sig.ident.clone());
            continue;
        }
        for &extra in &step_attrs[1..] {
            errors.spanned(
                &method.attrs[extra],
                "duplicate #[step] attribute: a method is one step",
            );
        }
        let attr = method.attrs[step_attrs[0]].clone();
        let mut index = 0;
        method.attrs.retain(|_| {
            let keep = !step_attrs.contains(&index);
            index += 1;
            keep
        });
        steps.push(parse_step(&attr, method, errors));
    }
    Some(FlowDef {
        item,
        name,
        name_span,
        doc,
        args,
        steps,
        plain_methods,
        kind,
    })
}

/// A method and its (already removed) `#[step]` attribute as a step.
fn parse_step(attr: &Attribute, method: &ImplItemFn, errors: &mut Errors) -> StepDef {
    let StepAttr {
        attr_span,
        transition,
        join,
        options,
    } = parse_step_attr(attr, errors);
    let ident = method.sig.ident.clone();
    StepDef {
        name: ident.unraw().to_string(),
        doc: doc_of(&method.attrs),
        attr_span,
        transition,
        join,
        options,
        sig: parse_signature(method),
        ident,
    }
}

/// Whether `attr` is `#[step]` or `#[path::to::step]`.
fn is_step_attr(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "step")
}

/// The doc comment in `attrs`, with the one space rustdoc adds after `///` removed.
fn doc_of(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .flat_map(|s| {
            s.split('\n')
                .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    lines.join("\n").trim().to_string()
}
