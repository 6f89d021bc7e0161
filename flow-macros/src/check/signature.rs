//! Step signatures: receiver, parameters, return type, and what a method may not be.

use proc_macro2::Span;
use syn::{Attribute, FnArg, ImplItem, ReceiverKind, Safety};

use crate::errors::Errors;
use crate::model::{FlowDef, OutputDef, StepDef, Transition, TransitionDef, name_of};

/// What the graph checks need to know about each step's signature.
pub struct Roles {
    /// Whether each step is a join, by its flag or, failing that, by taking `Inputs`.
    pub is_join: Vec<bool>,
    /// The span to blame for a join-related graph error, or `None` when the step's join flag and
    /// signature disagree: that mistake was reported already.
    pub join_span: Vec<Option<Span>>,
}

/// Checks each step's signature against what its attribute says it is.
pub fn check(flow: &FlowDef, errors: &mut Errors) -> Roles {
    let mut roles = Roles {
        is_join: Vec::new(),
        join_span: Vec::new(),
    };
    for (step, method) in flow.steps.iter().zip(step_methods(flow)) {
        check_method_shape(step, method, errors);
        check_cfg(&method.attrs, errors);
        let (is_join, join_span) = check_join_params(step, errors);
        roles.is_join.push(is_join);
        roles.join_span.push(join_span);
        check_item_params(flow, step, errors);
        check_output(step, errors);
    }
    roles
}

/// The methods that carry `#[step]`, in the order of `flow.steps`.
fn step_methods(flow: &FlowDef) -> impl Iterator<Item = &syn::ImplItemFn> {
    flow.item.items.iter().filter_map(move |item| match item {
        ImplItem::Fn(m) if flow.steps.iter().any(|s| s.ident == m.sig.ident) => Some(m),
        _ => None,
    })
}

fn check_method_shape(step: &StepDef, method: &syn::ImplItemFn, errors: &mut Errors) {
    let sig = &method.sig;
    if let Some(token) = &sig.asyncness {
        errors.spanned(
            token,
            "a step cannot be `async`: steps run on the executor's worker threads",
        );
    }
    if let Some(token) = &sig.constness {
        errors.spanned(token, "a step cannot be a `const fn`");
    }
    if let Safety::Unsafe(token) = &sig.safety {
        errors.spanned(token, "a step cannot be `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(abi, "a step cannot have an `extern` ABI");
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(variadic, "a step cannot be variadic");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.spanned(
            &sig.generics,
            format!(
                "step `{}` cannot be generic: the executor calls it with the flow's own types",
                step.name
            ),
        );
    }
    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) => {
            let ok =
                matches!(&r.kind, ReceiverKind::Reference(_, _, Some(_))) && r.mutability.is_none();
            if !ok {
                errors.spanned(r, format!("step `{}` must take `&mut self`", step.name));
            }
        }
        _ => errors.at(
            sig.ident.span(),
            format!(
                "step `{}` must take `&mut self` as its first parameter",
                step.name
            ),
        ),
    }
}

fn check_cfg(attrs: &[Attribute], errors: &mut Errors) {
    for attr in attrs {
        if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
            errors.spanned(
                attr,
                "`#[cfg]` on a step is not supported: the graph is fixed when #[flow] runs, before cfg is evaluated; put the condition inside the step",
            );
        }
    }
}

/// A join takes exactly one `inputs: Inputs<Self>`; other steps take none.
fn check_join_params(step: &StepDef, errors: &mut Errors) -> (bool, Option<Span>) {
    let takes_inputs = !step.sig.inputs_params.is_empty();
    for extra in step.sig.inputs_params.iter().skip(1) {
        errors.spanned(extra, "a join step takes one `inputs: Inputs<Self>`");
    }
    match (step.join, takes_inputs) {
        (Some(span), true) => (true, Some(span)),
        (Some(_), false) => {
            errors.at(
                step.sig.ident_span,
                format!(
                    "join step `{}` must take the branches' states: `fn {}(&mut self, inputs: Inputs<Self>)`",
                    step.name, step.name
                ),
            );
            (true, None)
        }
        (None, true) => {
            errors.spanned(
                &step.sig.inputs_params[0],
                format!("only a join step takes `Inputs`; if `{}` joins branches, write `#[step(join, …)]`", step.name),
            );
            (true, None)
        }
        (None, false) => (false, None),
    }
}

/// A foreach body takes exactly one item; other steps take none.
fn check_item_params(flow: &FlowDef, step: &StepDef, errors: &mut Errors) {
    let is_body = flow.steps.iter().any(|s| {
        matches!(s.transition.def(), Some(TransitionDef::Foreach { body, .. }) if name_of(body) == step.name)
    });
    let params = &step.sig.item_params;
    // A join or `end` named as a foreach body is reported once, by the graph check, as a foreach
    // that goes straight into its join or to `end`.
    let is_join = step.join.is_some() || !step.sig.inputs_params.is_empty();
    if is_body && (is_join || step.name == "end") {
        return;
    }
    if is_body {
        if params.is_empty() {
            errors.at(
                step.sig.ident_span,
                format!(
                    "step `{}` is the body of a foreach and takes the element: `fn {}(&mut self, item: T)`",
                    step.name, step.name
                ),
            );
        }
        for extra in params.iter().skip(1) {
            errors.spanned(
                &extra.param,
                "a foreach body takes exactly one parameter, the element",
            );
        }
    } else if !has_unresolved_foreach_body(flow) {
        for param in params {
            errors.spanned(
                &param.param,
                format!(
                    "step `{}` is not the body of a foreach, so it takes no parameter besides `&mut self`{}",
                    step.name,
                    if step.join.is_some() { " and `inputs: Inputs<Self>`" } else { "" }
                ),
            );
        }
    }
}

/// Whether some foreach names a body that is not a step, or some step's transition could not be
/// read: a typo there is reported once, not again on the parameter of the body that was meant.
fn has_unresolved_foreach_body(flow: &FlowDef) -> bool {
    flow.steps.iter().any(|s| match &s.transition {
        Transition::Unreadable { .. } => true,
        Transition::Read(TransitionDef::Foreach { body, .. }) => {
            !flow.steps.iter().any(|t| t.name == name_of(body))
        }
        _ => false,
    })
}

/// A switch returns the value its arms match; other return types are checked by rustc through
/// the `StepReturn` trait, so aliases such as `anyhow::Result<()>` work.
fn check_output(step: &StepDef, errors: &mut Errors) {
    if let Some(TransitionDef::Switch { .. }) = step.transition.def()
        && let OutputDef::Unit = step.sig.output
    {
        errors.at(
            step.sig.ident_span,
            format!(
                "switch step `{}` must return the value its arms match, e.g. `fn {}(&mut self) -> Route`",
                step.name, step.name
            ),
        );
    }
    if let Some(ty @ syn::Type::ImplTrait(_)) = step.sig.output.ty() {
        errors.spanned(ty, "a step cannot return `impl Trait`");
    }
}
