//! The options of `#[step(...)]`: the transition (`next`, `foreach`, `switch`), the `join` flag,
//! and `retries`, `timeout`, `catch`, `max_iterations`, `resources` (read in
//! [`super::resources`]).

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, Lit, Meta, Pat, Token, bracketed, parenthesized};

use super::list;
use super::resources::parse_resources;
use crate::errors::Errors;
use crate::model::{
    CatchDef, ResourcesDef, StepOptionsDef, SwitchArmDef, Transition, TransitionDef,
};
use crate::suggest::closest;

/// The keys `#[step(...)]` accepts.
const STEP_OPTIONS: &[&str] = &[
    "next",
    "foreach",
    "join",
    "switch",
    "retries",
    "timeout",
    "catch",
    "max_iterations",
    "resources",
];
/// The most retries a step may ask for; more is almost certainly a typo.
const MAX_RETRIES: u32 = 100;

/// What a `#[step]` attribute says, as far as it could be read.
pub struct StepAttr {
    /// The span of the `step` in `#[step(...)]`, for errors about the attribute as a whole.
    pub attr_span: Span,
    pub transition: Transition,
    /// The `join` flag, with its span.
    pub join: Option<Span>,
    pub options: StepOptionsDef,
}

/// Reads `attr`, reporting each bad option and going on with the next.
pub fn parse_step_attr(attr: &Attribute, errors: &mut Errors) -> StepAttr {
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
        raw.transition_unreadable = true;
    }
    let errors_before = errors.len();
    let combined = combine_transition(&raw, errors);
    let unreadable = raw.transition_unreadable
        || errors.len() > errors_before
        || (raw.unknown_key && combined.is_none());
    let transition = match combined {
        partial if unreadable => Transition::Unreadable { partial },
        Some(def) => Transition::Read(def),
        None => Transition::Absent,
    };
    StepAttr {
        attr_span,
        transition,
        join: raw.join,
        options: StepOptionsDef {
            retries: raw.retries.unwrap_or(0),
            timeout: raw.timeout,
            catch: raw.catch,
            max_iterations: raw.max_iterations,
            resources: raw.resources,
        },
    }
}

/// What the attribute's options said, before they are combined into a transition.
#[derive(Default)]
struct RawStepArgs {
    next: Option<(Ident, NextValue)>,
    foreach: Option<(Ident, Ident)>,
    switch: Option<(Ident, Vec<SwitchArmDef>)>,
    join: Option<Span>,
    retries: Option<u32>,
    timeout: Option<Duration>,
    catch: Option<CatchDef>,
    max_iterations: Option<(u32, Span)>,
    resources: ResourcesDef,
    seen: Vec<String>,
    /// A transition option was given but could not be read (and was reported).
    transition_unreadable: bool,
    /// An unknown key that is not close to any transition option or `join` was reported.
    unknown_key: bool,
}

/// The value of `next`: one step, or a branch's list.
enum NextValue {
    One(Ident),
    Many(Span, Vec<Ident>),
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
            "timeout" => parse_timeout(&meta).map(|t| raw.timeout = Some(t)),
            "catch" => parse_catch(&meta).map(|c| raw.catch = Some(c)),
            "max_iterations" => {
                parse_max_iterations(&meta).map(|n| raw.max_iterations = Some((n, key.span())))
            }
            "resources" => parse_resources(&meta, errors).map(|r| raw.resources = r),
            _ => {
                // The misspelt key may well have been the transition (or the join flag): the
                // checks then take the step as what it was most likely meant to be, so the one
                // typo is not also reported as a broken graph or a wrong signature.
                let meant = closest(&key_name, STEP_OPTIONS.iter().copied());
                match meant {
                    Some("next" | "foreach" | "switch") => raw.transition_unreadable = true,
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
                raw.transition_unreadable = true;
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
        if input.peek(syn::token::Bracket) {
            // `Miss => [clip, face]`: what `next` allows, not an arm.
            let list: proc_macro2::Group = input.parse()?;
            let names = Punctuated::<Ident, Token![,]>::parse_terminated
                .parse2(list.stream())
                .map(|names| {
                    names
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_else(|_| "a, b".to_owned());
            return Err(syn::Error::new(
                list.span(),
                format!(
                    "a switch arm goes to exactly one step, not a list; to fan out, send the arm \
                     to a step of its own that does: `#[step(next = [{names}])]`"
                ),
            ));
        }
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

/// `max_iterations = N`: how many passes a loop closed by this switch may make, at least one.
fn parse_max_iterations(meta: &ParseNestedMeta) -> syn::Result<u32> {
    let lit: syn::LitInt = meta.value()?.parse()?;
    match lit.base10_parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(syn::Error::new(
            lit.span(),
            "`max_iterations` takes a whole number of passes, at least 1, e.g. `max_iterations = 10`",
        )),
    }
}

/// `timeout = 30` (seconds) or `timeout = "1h 30m"`: more than zero, at most `u64::MAX`
/// milliseconds (a bound the runtime's deadline arithmetic relies on).
fn parse_timeout(meta: &ParseNestedMeta) -> syn::Result<Duration> {
    let value = meta.value()?;
    let lit: Lit = value.parse()?;
    let timeout = match &lit {
        Lit::Int(i) => i.base10_parse::<u64>().ok().map(Duration::from_secs),
        Lit::Str(s) => parse_duration(&s.value()),
        _ => None,
    };
    match timeout {
        Some(t) if !t.is_zero() && u64::try_from(t.as_millis()).is_ok() => Ok(t),
        _ => Err(syn::Error::new(
            lit.span(),
            "`timeout` takes seconds or a duration with units, e.g. `timeout = 30`, `timeout = \"1h 30m\"`, `timeout = \"500ms\"`; it must be more than zero",
        )),
    }
}

/// `"1h 30m"`, `"90s"`, `"500ms"`, `"2d"`, in humantime's syntax.
fn parse_duration(text: &str) -> Option<Duration> {
    // humantime 2.4.0 panics ("overflow in Duration::new") instead of returning its overflow
    // error when a sum reaches `u64::MAX` seconds and carries a whole second out of the
    // nanoseconds (`"18446744073709551615s 500ms 500ms"`): such a timeout is out of range, like
    // any other overflow, and the macro must not panic on what the user wrote.
    std::panic::catch_unwind(|| humantime::parse_duration(text))
        .ok()?
        .ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        let ms = |text: &str| parse_duration(text).map(|d| d.as_millis());
        assert_eq!(ms("90s"), Some(90_000));
        assert_eq!(ms("1h 30m"), Some(5_400_000));
        assert_eq!(ms("500ms"), Some(500));
        assert_eq!(ms("2d"), Some(172_800_000));
        assert_eq!(ms("5min"), Some(300_000));
        assert_eq!(ms(" 1h30m "), Some(5_400_000));
        assert_eq!(ms(""), None);
        assert_eq!(ms("10 parsecs"), None);
        assert_eq!(ms("s"), None);
        assert_eq!(ms("30"), None, "a string needs its unit");
    }
}
