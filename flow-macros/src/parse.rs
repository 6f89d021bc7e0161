//! Phase one: read the impl block and the `#[step]` attributes into the model.
//!
//! Everything wrong with an attribute's own syntax is reported here; whether the steps form a
//! valid graph is the check phase's job.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, Expr, ExprLit, FnArg, GenericArgument, Ident, ImplItem, ImplItemFn, ItemImpl, Lit,
    Meta, Pat, PathArguments, ReturnType, Token, Type, bracketed, parenthesized,
};

use crate::errors::Errors;
use crate::model::{
    CatchDef, FlowArgs, FlowDef, ItemParam, OutputDef, SignatureDef, StepDef, StepOptionsDef,
    SwitchArmDef, TransitionDef,
};
use crate::suggest::{closest, did_you_mean};

/// The keys `#[step(...)]` accepts.
pub const STEP_OPTIONS: &[&str] = &[
    "next", "foreach", "join", "switch", "retries", "timeout", "catch",
];
/// The keys `#[flow(...)]` accepts.
const FLOW_OPTIONS: &[&str] = &["params", "crate"];
/// The most retries a step may ask for; more is almost certainly a typo.
const MAX_RETRIES: u32 = 100;

/// Parses the `#[flow(...)]` arguments and the impl block.
///
/// Returns `None` when the item is not an impl block at all: then there is nothing to fall back to.
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
    let mut checkable = true;
    let mut fallback_ok = true;
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
            checkable = false;
            fallback_ok = false;
        }
    }
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.spanned(
            &item.generics,
            "a flow type cannot be generic: its state is stored and reloaded by name",
        );
        fallback_ok = false;
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
        checkable,
        fallback_ok,
    })
}

fn parse_flow_args(attr: TokenStream, errors: &mut Errors) -> FlowArgs {
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

/// Whether `attr` is `#[step]` or `#[path::to::step]`.
pub fn is_step_attr(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "step")
}

/// The doc comment in `attrs`, with the one space rustdoc adds after `///` removed.
pub fn doc_of(attrs: &[Attribute]) -> String {
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

/// What the attribute arguments said, before they are combined into a transition.
#[derive(Default)]
struct RawStepArgs {
    next: Option<(Ident, NextValue)>,
    foreach: Option<(Ident, Ident)>,
    switch: Option<(Ident, Vec<SwitchArmDef>)>,
    join: Option<Span>,
    retries: Option<u32>,
    timeout_ms: Option<u64>,
    catch: Option<CatchDef>,
    seen: Vec<String>,
    transition_failed: bool,
    unknown_key: bool,
}

enum NextValue {
    One(Ident),
    Many(Span, Vec<Ident>),
}

fn parse_step(attr: &Attribute, method: &ImplItemFn, errors: &mut Errors) -> StepDef {
    let ident = method.sig.ident.clone();
    let attr_span = attr
        .path()
        .segments
        .last()
        .map_or_else(|| attr.span(), |s| s.ident.span());
    let mut raw = RawStepArgs::default();
    if let Meta::List(_) = &attr.meta {
        if let Err(e) = parse_step_args(attr, &mut raw, errors) {
            errors.push(e);
        }
    } else if let Meta::NameValue(nv) = &attr.meta {
        errors.spanned(
            nv,
            "write the step's options in parentheses: `#[step(next = a)]`",
        );
        raw.transition_failed = true;
    }
    let errors_before = errors.len();
    let transition = combine_transition(&raw, errors);
    let transition_failed = raw.transition_failed
        || errors.len() > errors_before
        || (raw.unknown_key && transition.is_none());
    StepDef {
        transition_failed,
        name: ident.unraw().to_string(),
        doc: doc_of(&method.attrs),
        attr_span,
        transition,
        join: raw.join,
        options: StepOptionsDef {
            retries: raw.retries.unwrap_or(0),
            timeout_ms: raw.timeout_ms,
            catch: raw.catch,
        },
        sig: parse_signature(method),
        ident,
    }
}

/// Parses `key = value, key(...), flag, …`, reporting each bad key and going on with the next.
fn parse_step_args(
    attr: &Attribute,
    raw: &mut RawStepArgs,
    errors: &mut Errors,
) -> syn::Result<()> {
    attr.parse_nested_meta(|meta| {
        let Some(key) = meta.path.get_ident().cloned() else {
            errors.spanned(
                &meta.path,
                format!("expected one of {}", list(STEP_OPTIONS)),
            );
            return skip_value(&meta);
        };
        let key_name = key.to_string();
        if raw.seen.contains(&key_name) {
            errors.at(key.span(), format!("duplicate step option `{key_name}`"));
            return skip_value(&meta);
        }
        if STEP_OPTIONS.contains(&key_name.as_str()) {
            raw.seen.push(key_name.clone());
        }
        let parsed = match key_name.as_str() {
            "next" => parse_next(&meta).map(|v| raw.next = Some((key.clone(), v))),
            "foreach" => meta
                .value()
                .and_then(|v| v.parse::<Ident>())
                .map(|f| raw.foreach = Some((key.clone(), f))),
            "switch" => parse_switch(&meta).map(|arms| raw.switch = Some((key.clone(), arms))),
            "join" => {
                // Even as `join = x` it was meant as a join: the signature is checked as one.
                raw.join = Some(key.span());
                flag(&meta, "join")
            }
            "retries" => parse_retries(&meta).map(|n| raw.retries = Some(n)),
            "timeout" => parse_timeout(&meta).map(|ms| raw.timeout_ms = Some(ms)),
            "catch" => parse_catch(&meta).map(|c| raw.catch = Some(c)),
            _ => {
                // The misspelt key may well have been the transition (or the join flag): the
                // checks then take the step as what it was most likely meant to be, so the one
                // typo is not also reported as a broken graph or a wrong signature.
                let meant = closest(&key_name, STEP_OPTIONS.iter().copied());
                match meant {
                    Some("next" | "foreach" | "switch") => raw.transition_failed = true,
                    Some("join") => raw.join = raw.join.or(Some(key.span())),
                    _ => raw.unknown_key = true,
                }
                errors.at(
                    key.span(),
                    format!(
                        "unknown step option `{key_name}`; the options are {}{}",
                        list(STEP_OPTIONS),
                        meant
                            .map(|m| format!("; did you mean `{m}`?"))
                            .unwrap_or_default()
                    ),
                );
                return skip_value(&meta);
            }
        };
        if let Err(e) = parsed {
            if matches!(key_name.as_str(), "next" | "foreach" | "switch") {
                raw.transition_failed = true;
            }
            errors.push(e);
            return skip_value(&meta);
        }
        Ok(())
    })
}

/// Consumes the rest of one option (`= …` up to the next comma, or a parenthesised group) so the
/// options after a bad one are still read.
fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    let input = meta.input;
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}

fn flag(meta: &ParseNestedMeta, name: &str) -> syn::Result<()> {
    if meta.input.is_empty() || meta.input.peek(Token![,]) {
        Ok(())
    } else {
        Err(meta.error(format!(
            "`{name}` is a flag and takes no value: write `{name}`"
        )))
    }
}

fn parse_next(meta: &ParseNestedMeta) -> syn::Result<NextValue> {
    let value = meta.value()?;
    if value.peek(syn::token::Bracket) {
        let content;
        let bracket = bracketed!(content in value);
        let targets =
            Punctuated::<Ident, Token![,]>::parse_terminated_with(&content, Ident::parse_any)
                .map_err(|e| {
                    drain(&content);
                    syn::Error::new(e.span(), "expected a step name: `next = [a, b]`")
                })?;
        Ok(NextValue::Many(
            bracket.span.join(),
            targets.into_iter().collect(),
        ))
    } else if value.peek(Ident::peek_any) {
        Ok(NextValue::One(value.call(Ident::parse_any)?))
    } else {
        Err(value
            .error("expected a step name or a list of step names: `next = a` or `next = [a, b]`"))
    }
}

fn parse_switch(meta: &ParseNestedMeta) -> syn::Result<Vec<SwitchArmDef>> {
    if !meta.input.peek(syn::token::Paren) {
        return Err(
            meta.error("expected arms in parentheses: `switch(Route::A => a, Route::B => b)`")
        );
    }
    let content;
    parenthesized!(content in meta.input);
    let arms = Punctuated::<SwitchArmDef, Token![,]>::parse_terminated_with(&content, |input| {
        let pat = Pat::parse_multi_with_leading_vert(input)?;
        input.parse::<Token![=>]>()?;
        let target = input.call(Ident::parse_any)?;
        Ok(SwitchArmDef { pat, target })
    })
    .inspect_err(|_| drain(&content))?;
    Ok(arms.into_iter().collect())
}

/// Consumes what is left inside a bracketed or parenthesised group after an error in it, so that
/// syn does not report the leftover tokens as a second error.
fn drain(content: &syn::parse::ParseBuffer) {
    let _ = content.parse::<TokenStream>();
}

fn parse_retries(meta: &ParseNestedMeta) -> syn::Result<u32> {
    let lit: syn::LitInt = meta.value()?.parse()?;
    let n: u32 = lit.base10_parse().map_err(|_| {
        syn::Error::new(
            lit.span(),
            "`retries` takes a whole number, e.g. `retries = 3`",
        )
    })?;
    if n > MAX_RETRIES {
        return Err(syn::Error::new(
            lit.span(),
            format!("`retries` is at most {MAX_RETRIES}"),
        ));
    }
    Ok(n)
}

fn parse_timeout(meta: &ParseNestedMeta) -> syn::Result<u64> {
    let value = meta.value()?;
    let lit: Lit = value.parse()?;
    let ms = match &lit {
        Lit::Int(i) => i
            .base10_parse::<u64>()
            .ok()
            .and_then(|s| s.checked_mul(1000)),
        Lit::Str(s) => parse_duration_ms(&s.value()),
        _ => None,
    };
    match ms {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(syn::Error::new(
            lit.span(),
            "`timeout` takes seconds or a duration with units, e.g. `timeout = 30`, `timeout = \"1h 30m\"`, `timeout = \"500ms\"`; it must be more than zero",
        )),
    }
}

/// Parses `"1h 30m"`, `"90s"`, `"500ms"`, `"2d"` into milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(factor)?)?;
        rest = rest[unit_len..].trim_start();
    }
    Some(total)
}

fn parse_catch(meta: &ParseNestedMeta) -> syn::Result<CatchDef> {
    if meta.input.peek(Token![=]) {
        let field = meta.value()?.call(Ident::parse_any)?;
        Ok(CatchDef { field: Some(field) })
    } else {
        flag(meta, "catch")?;
        Ok(CatchDef { field: None })
    }
}

/// Combines `next`, `foreach` and `switch` into one transition, reporting conflicts.
fn combine_transition(raw: &RawStepArgs, errors: &mut Errors) -> Option<TransitionDef> {
    if let Some((switch_key, arms)) = &raw.switch {
        let conflict = raw
            .next
            .as_ref()
            .map(|(k, _)| k)
            .or(raw.foreach.as_ref().map(|(k, _)| k));
        if let Some(conflict) = conflict {
            errors.at(
                conflict.span(),
                format!("a step has one transition: `{conflict}` cannot be combined with `switch`"),
            );
        }
        return Some(TransitionDef::Switch {
            keyword: switch_key.span(),
            arms: arms.iter().map(clone_arm).collect(),
        });
    }
    match (&raw.foreach, &raw.next) {
        (Some((_, field)), Some((_, NextValue::One(body)))) => Some(TransitionDef::Foreach {
            field: field.clone(),
            body: body.clone(),
        }),
        (Some(_), Some((_, NextValue::Many(span, _)))) => {
            errors.at(
                *span,
                "a foreach has one body step: `foreach = field, next = body`",
            );
            None
        }
        (Some((key, _)), None) => {
            errors.at(
                key.span(),
                "`foreach` needs its body step: `foreach = field, next = body`",
            );
            None
        }
        (None, Some((_, NextValue::One(target)))) => Some(TransitionDef::Linear {
            target: target.clone(),
        }),
        (None, Some((_, NextValue::Many(span, targets)))) => {
            if targets.len() < 2 {
                let hint = match targets.first() {
                    Some(t) => format!("; for one step write `next = {t}`"),
                    None => String::new(),
                };
                errors.at(*span, format!("a branch needs at least two steps{hint}"));
                return None;
            }
            Some(TransitionDef::Branch {
                targets: targets.clone(),
            })
        }
        (None, None) => None,
    }
}

fn clone_arm(arm: &SwitchArmDef) -> SwitchArmDef {
    SwitchArmDef {
        pat: arm.pat.clone(),
        target: arm.target.clone(),
    }
}

fn parse_signature(method: &ImplItemFn) -> SignatureDef {
    let mut inputs_params = Vec::new();
    let mut item_params = Vec::new();
    for arg in &method.sig.inputs {
        if let FnArg::Typed(pt) = arg {
            if is_inputs_type(&pt.ty) {
                inputs_params.push(pt.clone());
            } else {
                item_params.push(ItemParam {
                    ty: (*pt.ty).clone(),
                    param: pt.clone(),
                });
            }
        }
    }
    let output = match &method.sig.output {
        ReturnType::Default => OutputDef::Unit,
        ReturnType::Type(_, ty) => match &**ty {
            Type::Tuple(t) if t.elems.is_empty() => OutputDef::Unit,
            _ if is_result_type(ty) => OutputDef::Result { ty: (**ty).clone() },
            _ => OutputDef::Other { ty: (**ty).clone() },
        },
    };
    SignatureDef {
        ident_span: method.sig.ident.span(),
        inputs_params,
        item_params,
        output,
    }
}

/// Whether `ty` is `Inputs<…>` under any path.
fn is_inputs_type(ty: &Type) -> bool {
    last_segment_is(ty, "Inputs")
}

/// Whether `ty` is `Result<…>` under any path (`std::result::Result`, `anyhow::Result`, …).
fn is_result_type(ty: &Type) -> bool {
    if let Type::Path(p) = ty
        && let Some(seg) = p.path.segments.last()
        && seg.ident == "Result"
        && let PathArguments::AngleBracketed(args) = &seg.arguments
    {
        return args
            .args
            .iter()
            .any(|a| matches!(a, GenericArgument::Type(_)));
    }
    false
}

fn last_segment_is(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == name),
        _ => false,
    }
}

/// `a`, `b` and `c` as "`a`, `b`, `c`".
pub fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration_ms("90s"), Some(90_000));
        assert_eq!(parse_duration_ms("1h 30m"), Some(5_400_000));
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("2d"), Some(172_800_000));
        assert_eq!(parse_duration_ms(""), None);
        assert_eq!(parse_duration_ms("10 parsecs"), None);
        assert_eq!(parse_duration_ms("s"), None);
    }
}
