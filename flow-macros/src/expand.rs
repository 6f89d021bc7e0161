//! Phase three: the `Flow` implementation for a valid flow, and the dummy one that an invalid
//! flow's [`Fallback`](crate::fallback::Fallback) may add.
//!
//! Everything generated lives in `const _: () = { … };` and names the runtime only by absolute
//! paths, so nothing clashes with the user's names or depends on their imports. Calls into the
//! user's code carry the user's spans, so rustc's type errors land on the user's tokens.

use crate::check::CheckedGraph;
use crate::model::{FlowDef, OutputDef, StepDef, TransitionDef, name_of};
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};

/// The path of the runtime's private module, honouring `#[flow(crate = …)]`.
fn private_path(flow: &FlowDef) -> TokenStream {
    private_path_at(flow, Span::call_site())
}

/// [`private_path`] with the span of a user's token, for calls whose errors rustc reports on the
/// whole call expression: every token of it must be the user's, or the error lands on `#[flow]`.
fn private_path_at(flow: &FlowDef, span: Span) -> TokenStream {
    match &flow.args.krate {
        Some(krate) => quote_spanned!(span=> #krate::__private),
        None => quote_spanned!(span=> ::blooming_flowers::__private),
    }
}

/// The user's impl block, the `Flow` implementation and its static graph.
pub fn expand(flow: &FlowDef, graph: &CheckedGraph) -> TokenStream {
    let p = private_path(flow);
    let item = &flow.item;
    let self_ty = &flow.item.self_ty;
    let graph_const = graph_description(flow, graph, &p);
    let run_arms = flow
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| run_arm(flow, graph, i, step, &p));
    let item_arms = flow
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, step)| foreach_arm(flow, i, step));
    let catch_arms = flow
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, step)| catch_arm(i, step));
    let names = flow.steps.iter().map(|s| &s.name);
    let impl_head = impl_head(self_ty, &p);
    let state_items = state_items(self_ty);
    let params_items = params_items(flow, &p);
    let (build_const, build_tracking) = crate::build_info::build_items(&p);
    quote! {
        #item

        #[doc(hidden)]
        #[allow(non_local_definitions, clippy::all, clippy::pedantic)]
        const _: () = {
            const __STEP_NAMES: &[&::core::primitive::str] = &[#(#names),*];
            #build_tracking

            #[automatically_derived]
            #impl_head {
                const GRAPH: &'static #p::FlowGraph = &#graph_const;
                #build_const
                #state_items

                fn __run_step(
                    &mut self,
                    __step: ::core::primitive::usize,
                    __input: #p::StepInput<'_, Self>,
                ) -> ::core::result::Result<#p::StepOutcome, #p::StepError> {
                    match (__step, __input) {
                        #(#run_arms)*
                        (__step, _) if __step < __STEP_NAMES.len() => {
                            ::core::result::Result::Err(#p::unexpected_input(__STEP_NAMES[__step]))
                        }
                        (__step, _) => ::core::result::Result::Err(#p::unknown_step(__step)),
                    }
                }

                fn __foreach_items(
                    &self,
                    __step: ::core::primitive::usize,
                ) -> ::core::result::Result<::std::vec::Vec<::std::vec::Vec<::core::primitive::u8>>, #p::StepError> {
                    match __step {
                        #(#item_arms)*
                        _ => ::core::result::Result::Err(#p::unexpected_input(
                            __STEP_NAMES.get(__step).copied().unwrap_or("?"),
                        )),
                    }
                }

                fn __record_caught(&mut self, __step: ::core::primitive::usize, __message: ::std::string::String) {
                    match __step {
                        #(#catch_arms)*
                        _ => {}
                    }
                }

                #params_items
            }
        };
    }
}

/// The parameter hooks of `#[flow(params = field)]`. The accessor closures let rustc infer the
/// field's type, so the macro never needs to know it; errors land on the field's name.
fn params_items(flow: &FlowDef, p: &TokenStream) -> TokenStream {
    let Some(field) = &flow.args.params else {
        return TokenStream::new();
    };
    let get = quote_spanned!(field.span()=> |__s: &Self| &__s.#field);
    let get_mut = quote_spanned!(field.span()=> |__s: &mut Self| &mut __s.#field);
    quote! {
        fn __params_command(__command: #p::clap::Command) -> #p::clap::Command {
            #p::params_command(__command, #get)
        }
        fn __apply_params(
            &mut self,
            __matches: &#p::clap::ArgMatches,
        ) -> ::core::result::Result<#p::serde_json::Value, #p::clap::Error> {
            #p::apply_params(self, __matches, #get_mut)
        }
        fn __restore_params(
            &mut self,
            __params: &#p::serde_json::Value,
        ) -> ::core::result::Result<(), ::std::string::String> {
            #p::restore_params(self, __params, #get_mut)
        }
    }
}

/// `impl Flow for Type`, spanned on the user's type so that "cannot be persisted" lands there.
fn impl_head(self_ty: &syn::Type, p: &TokenStream) -> TokenStream {
    let span = first_span(self_ty);
    quote_spanned!(span=> impl #p::Flow for #self_ty)
}

/// The state items of `Flow`: the one place that requires the type to be persistable, spanned on
/// the user's type so a missing derive is reported once, there.
fn state_items(self_ty: &syn::Type) -> TokenStream {
    let span = first_span(self_ty);
    quote_spanned! {span=>
        type __State = Self;
        #[inline]
        fn __as_state(&self) -> &Self { self }
        #[inline]
        fn __from_state(state: Self) -> Self { state }
    }
}

fn first_span(tokens: &impl ToTokens) -> Span {
    tokens
        .to_token_stream()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span())
}

fn graph_description(flow: &FlowDef, graph: &CheckedGraph, p: &TokenStream) -> TokenStream {
    let name = &flow.name;
    let doc = &flow.doc;
    let start = graph.start;
    let end = graph.end;
    let steps = flow.steps.iter().enumerate().map(|(i, step)| {
        let step_name = &step.name;
        let step_doc = &step.doc;
        let targets = &graph.targets[i];
        let transition = match step.transition.def() {
            None => quote!(#p::Transition::End),
            Some(TransitionDef::Linear { .. }) => {
                let t = targets[0];
                quote!(#p::Transition::Linear(#t))
            }
            Some(TransitionDef::Branch { .. }) => quote!(#p::Transition::Branch(&[#(#targets),*])),
            Some(TransitionDef::Foreach { field, .. }) => {
                let body = targets[0];
                let field = field.to_string();
                quote!(#p::Transition::Foreach { field: #field, body: #body })
            }
            Some(TransitionDef::Switch { arms, .. }) => {
                let arms = arms.iter().zip(targets).map(|(arm, target)| {
                    let pattern = pattern_text(&arm.pat);
                    quote!(#p::SwitchArm { pattern: #pattern, target: #target })
                });
                quote!(#p::Transition::Switch(&[#(#arms),*]))
            }
        };
        let join = match graph.join_of[i] {
            Some(split) => quote!(::core::option::Option::Some(#split)),
            None => quote!(::core::option::Option::None),
        };
        let retries = step.options.retries;
        let timeout = match step.options.timeout {
            Some(t) => {
                let (secs, nanos) = (t.as_secs(), t.subsec_nanos());
                quote!(::core::option::Option::Some(::core::time::Duration::new(#secs, #nanos)))
            }
            None => quote!(::core::option::Option::None),
        };
        let catch = match &step.options.catch {
            None => quote!(::core::option::Option::None),
            Some(c) => {
                let field = match &c.field {
                    Some(f) => {
                        let f = f.to_string();
                        quote!(::core::option::Option::Some(#f))
                    }
                    None => quote!(::core::option::Option::None),
                };
                quote!(::core::option::Option::Some(#p::CatchSpec { field: #field }))
            }
        };
        let max_iterations = match step.options.max_iterations {
            Some((n, _)) => quote!(::core::option::Option::Some(#n)),
            None => quote!(::core::option::Option::None),
        };
        let resources = resources_tokens(&step.options.resources, p);
        quote! {
            #p::StepSpec {
                name: #step_name,
                doc: #step_doc,
                transition: #transition,
                join: #join,
                options: #p::StepOptions {
                    retries: #retries,
                    timeout: #timeout,
                    catch: #catch,
                    max_iterations: #max_iterations,
                    resources: #resources,
                },
            }
        }
    });
    quote! {
        #p::FlowGraph {
            name: #name,
            doc: #doc,
            steps: &[#(#steps),*],
            start: #start,
            end: #end,
        }
    }
}

/// `Resources { cpus, memory_bytes, gpus }` as the step declared them.
fn resources_tokens(resources: &crate::model::ResourcesDef, p: &TokenStream) -> TokenStream {
    fn option<T: ToTokens>(value: Option<T>) -> TokenStream {
        match value {
            Some(v) => quote!(::core::option::Option::Some(#v)),
            None => quote!(::core::option::Option::None),
        }
    }
    let cpus = option(resources.cpus);
    let memory = option(resources.memory_bytes);
    let gpus = option(resources.gpus);
    quote!(#p::Resources { cpus: #cpus, memory_bytes: #memory, gpus: #gpus })
}

/// A pattern as rustfmt would write it: `Route::A`, `0..=49`, `Some(x) | None`, `Foo { a, .. }`.
pub(crate) fn pattern_text(pat: &syn::Pat) -> String {
    let mut out = String::new();
    write_tokens(pat.to_token_stream(), &mut out);
    out
}

/// Writes `tokens` with a space between two tokens unless one of them is glued to its neighbour.
fn write_tokens(tokens: TokenStream, out: &mut String) {
    use proc_macro2::{Delimiter, Spacing, TokenTree};
    // Operators that take no space after them (`::`, ranges, unary `-` and `&`, and `(`-like
    // openings), and those that take none before them.
    const GLUED_AFTER: &[&str] = &["::", "..", "..=", "-", "&", "#"];
    const GLUED_BEFORE: &[&str] = &["::", ",", ";", ":"];
    let is_word = |t: &str| {
        t.chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '"' || c == '\'')
    };
    let mut prev: Option<String> = None;
    let mut op = String::new();
    let mut iter = tokens.into_iter().peekable();
    while let Some(tree) = iter.next() {
        // A whole operator (`..=`, `::`, `=>`) is one atom: its characters are joint.
        let (atom, group) = match tree {
            TokenTree::Punct(p) => {
                op.push(p.as_char());
                if p.spacing() == Spacing::Joint && matches!(iter.peek(), Some(TokenTree::Punct(_)))
                {
                    continue;
                }
                (std::mem::take(&mut op), None)
            }
            TokenTree::Group(g) => (String::new(), Some(g)),
            other => (other.to_string(), None),
        };
        let space = match (&prev, &group) {
            (None, _) => false,
            (Some(p), _) if GLUED_AFTER.contains(&p.as_str()) => false,
            // A range's `..` is glued to its start (`0..=9`), a rest pattern's is not (`a, ..`).
            (Some(p), None) if atom == ".." || atom == "..=" => !is_word(p) && p != ")" && p != "]",
            (Some(_), None) => !GLUED_BEFORE.contains(&atom.as_str()),
            // `Some(x)`, `[a, b]` after a name; `Foo { .. }` keeps its space.
            (Some(p), Some(g)) => g.delimiter() == Delimiter::Brace || !is_word(p),
        };
        if space {
            out.push(' ');
        }
        match group {
            Some(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{ ", " }"),
                    Delimiter::None => ("", ""),
                };
                if g.stream().is_empty() && g.delimiter() == Delimiter::Brace {
                    out.push_str("{}");
                } else {
                    out.push_str(open);
                    write_tokens(g.stream(), out);
                    out.push_str(close);
                }
                prev = Some(close.trim().to_string());
            }
            None => {
                out.push_str(&atom);
                prev = Some(atom);
            }
        }
    }
}

/// The dispatch arm that runs step `i`.
fn run_arm(
    flow: &FlowDef,
    graph: &CheckedGraph,
    i: usize,
    step: &StepDef,
    p: &TokenStream,
) -> TokenStream {
    let ident = &step.ident;
    let name = &step.name;
    let is_body = flow.steps.iter().zip(&graph.targets).any(|(s, t)| {
        matches!(s.transition.def(), Some(TransitionDef::Foreach { .. })) && t.first() == Some(&i)
    });
    let (pattern, call) = if graph.join_of[i].is_some() {
        // The argument carries the parameter's type span: `Inputs<Other>` is reported there.
        let span = step
            .sig
            .inputs_params
            .first()
            .map_or_else(|| ident.span(), |p| first_span(&p.ty));
        let arg = quote_spanned!(span=> __inputs);
        (
            quote!(#p::StepInput::Join(__inputs)),
            quote_spanned!(ident.span()=> <Self>::#ident(self, #arg)),
        )
    } else if is_body {
        let ty = &step.sig.item_params[0].ty;
        // Spanned on the item type, path included: an item type that cannot be deserialized is
        // reported there.
        let span = first_span(ty);
        let p_at = private_path_at(flow, span);
        let decode = quote_spanned! {span=>
            let __item: #ty = #p_at::decode_item(__item, #name)?;
        };
        (
            quote!(#p::StepInput::Item(__item)),
            quote_spanned!(ident.span()=> { #decode <Self>::#ident(self, __item) }),
        )
    } else {
        (
            quote!(#p::StepInput::Plain),
            quote_spanned!(ident.span()=> <Self>::#ident(self)),
        )
    };
    let body = match step.transition.def() {
        Some(TransitionDef::Switch { keyword, arms }) => {
            let value = match &step.sig.output {
                // As for `into_step_result` below: an unusable error type is reported on the
                // return type.
                OutputDef::Result { ty } => {
                    let span = first_span(ty);
                    let p_at = private_path_at(flow, span);
                    let returned = quote_spanned!(span=> __returned);
                    quote_spanned!(span=> { let #returned = #call; #p_at::switch_value(#returned)? })
                }
                _ => call,
            };
            // Each arm carries its target's span, so rustc's suggestion for a missing pattern
            // goes after the user's last arm rather than onto `#[flow]`.
            let match_arms = arms.iter().enumerate().map(|(arm_index, arm)| {
                let pat = &arm.pat;
                let span = arm.target.span();
                let p = private_path_at(flow, span);
                quote_spanned!(span=> #pat => ::core::result::Result::Ok(#p::StepOutcome::Arm(#arm_index)),)
            });
            // The match carries the `switch` keyword's span: a missing arm is reported there.
            let scrutinee = quote_spanned!(*keyword=> __value);
            quote_spanned! {*keyword=>
                let __value = #value;
                match #scrutinee { #(#match_arms)* }
            }
        }
        _ => {
            // The value is bound to a name carrying the return type's span: rustc reports an
            // unsupported return type on the argument of `into_step_result`, i.e. there.
            let span = step
                .sig
                .output
                .ty()
                .map_or_else(|| ident.span(), first_span);
            let p_at = private_path_at(flow, span);
            let returned = quote_spanned!(span=> __returned);
            let result = quote_spanned!(span=> #p_at::into_step_result(#returned)?;);
            quote! {
                let #returned = #call;
                #result
                ::core::result::Result::Ok(#p::StepOutcome::Continue)
            }
        }
    };
    quote! {
        (#i, #pattern) => { #body }
    }
}

/// The arm of `__foreach_items` for a foreach step: encodes the field's elements as the body's
/// item type, so rustc checks that the two agree.
fn foreach_arm(flow: &FlowDef, i: usize, step: &StepDef) -> Option<TokenStream> {
    let Some(TransitionDef::Foreach { field, body }) = step.transition.def() else {
        return None;
    };
    let body_step = flow.steps.iter().find(|s| s.name == name_of(body))?;
    let item_ty = &body_step.sig.item_params.first()?.ty;
    let name = &step.name;
    // A misspelt or non-iterable field is reported on the field's token, by the access; a field
    // whose elements are not the body's item type on the item type, by the argument of
    // `encode_items`.
    let field_span = field.span();
    let item_span = first_span(item_ty);
    let field_ref = quote_spanned!(field_span=> __field);
    let p_field = private_path_at(flow, field_span);
    let access = quote_spanned! {field_span=>
        use #p_field::ForeachField as _;
        let #field_ref = self.#field.__foreach_iter();
    };
    let field_arg = quote_spanned!(item_span=> __field);
    let p = private_path_at(flow, item_span);
    let call = quote_spanned!(item_span=> #p::encode_items::<#item_ty, _>(#field_arg, #name));
    Some(quote!(#i => { #access #call }))
}

/// The arm of `__record_caught` for a step with `catch = field`.
fn catch_arm(i: usize, step: &StepDef) -> Option<TokenStream> {
    let field = step.options.catch.as_ref()?.field.as_ref()?;
    // A field of another type is reported on the field's token as "expected `&mut Option<String>`".
    let assign = quote_spanned! {field.span()=>
        let __field: &mut ::core::option::Option<::std::string::String> = &mut self.#field;
        *__field = ::core::option::Option::Some(__message);
    };
    Some(quote!(#i => { #assign }))
}

/// `impl Flow for Type` with an empty graph and no steps; like the real one, it requires the
/// type to be persistable, which is reported on the type.
pub fn dummy_flow_impl(flow: &FlowDef) -> TokenStream {
    let p = private_path(flow);
    let name = &flow.name;
    let impl_head = impl_head(&flow.item.self_ty, &p);
    let state_items = state_items(&flow.item.self_ty);
    quote! {
        #[doc(hidden)]
        #[allow(non_local_definitions, clippy::all, clippy::pedantic)]
        const _: () = {
            #impl_head {
                const GRAPH: &'static #p::FlowGraph = &#p::FlowGraph {
                    name: #name, doc: "", steps: &[], start: 0, end: 0,
                };
                #state_items
                fn __run_step(
                    &mut self,
                    __step: ::core::primitive::usize,
                    _: #p::StepInput<'_, Self>,
                ) -> ::core::result::Result<#p::StepOutcome, #p::StepError> {
                    ::core::result::Result::Err(#p::unknown_step(__step))
                }
                fn __foreach_items(
                    &self,
                    __step: ::core::primitive::usize,
                ) -> ::core::result::Result<::std::vec::Vec<::std::vec::Vec<::core::primitive::u8>>, #p::StepError> {
                    ::core::result::Result::Err(#p::unknown_step(__step))
                }
                fn __record_caught(&mut self, _: ::core::primitive::usize, _: ::std::string::String) {}
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::pattern_text;

    #[test]
    fn patterns_are_written_as_rustfmt_would() {
        let cases: [(syn::Pat, &str); 14] = [
            (syn::parse_quote!(Route::Big), "Route::Big"),
            (syn::parse_quote!(crate::Route::Big), "crate::Route::Big"),
            (syn::parse_quote!(0..=49), "0..=49"),
            (syn::parse_quote!(..0), "..0"),
            (syn::parse_quote!(-5..=-1), "-5..=-1"),
            (syn::parse_quote!(50 | 51), "50 | 51"),
            (syn::parse_quote!(_), "_"),
            (
                syn::parse_quote!(Some(Route::A) | None),
                "Some(Route::A) | None",
            ),
            (syn::parse_quote!((true, _)), "(true, _)"),
            (
                syn::parse_quote!(Shape { sides: 3, .. }),
                "Shape { sides: 3, .. }",
            ),
            (syn::parse_quote!(Unit {}), "Unit {}"),
            (syn::parse_quote!([first, .., last]), "[first, .., last]"),
            (syn::parse_quote!(n @ 1..=9), "n @ 1..=9"),
            (syn::parse_quote!("text"), "\"text\""),
        ];
        for (pat, text) in cases {
            assert_eq!(pattern_text(&pat), text);
        }
    }
}
