//! What the parser extracts from a `#[flow]` impl block: the input of the checks and of expansion.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::{Ident, ItemImpl, Pat, PatType, Path, Type};

/// A parsed `#[flow]` impl block.
pub struct FlowDef {
    /// The user's impl block with every `#[step]` attribute removed, emitted unchanged.
    pub item: ItemImpl,
    /// The flow's name: the last segment of the impl's self type.
    pub name: String,
    /// Where that name is written, for errors about it.
    pub name_span: Span,
    /// The doc comment of the impl block.
    pub doc: String,
    /// Options of the `#[flow(...)]` attribute.
    pub args: FlowArgs,
    /// Every method that carries `#[step]`, in declaration order.
    pub steps: Vec<StepDef>,
    /// Methods of the impl without `#[step]`, so an error can say "add #[step]".
    pub plain_methods: Vec<Ident>,
    /// Whether the impl block is meant to hold a flow's steps: false for a trait impl without any
    /// `#[step]`, where the one error is that `#[flow]` is on the wrong block, and nothing else is
    /// checked.
    pub checkable: bool,
    /// Whether a fallback `Flow` implementation can be written for the type after an error: false
    /// for a generic type (whose parameters the fallback could not satisfy) and for a trait impl
    /// without steps (whose type may well have its real `#[flow]` impl elsewhere).
    pub fallback_ok: bool,
}

/// Options of the `#[flow(...)]` attribute.
#[derive(Default)]
pub struct FlowArgs {
    /// `crate = path`: where the runtime lives, for crates that re-export blooming-flowers.
    pub krate: Option<Path>,
    /// `params = field`: the field, of a type deriving `clap::Args`, that `run --flags` set.
    pub params: Option<syn::Ident>,
}

/// A method that carries `#[step]`.
pub struct StepDef {
    /// The method's name, which is the step's name.
    pub ident: Ident,
    /// The step's name as a string (raw identifiers unwrapped).
    pub name: String,
    /// The doc comment, used as the step's description.
    pub doc: String,
    /// The span of the `step` in `#[step(...)]`, for errors about the attribute as a whole.
    pub attr_span: Span,
    /// Where the step goes; `None` when the attribute gives no transition.
    pub transition: Option<TransitionDef>,
    /// Whether a transition option was given but could not be read (and was reported).
    pub transition_failed: bool,
    /// The `join` flag, with its span.
    pub join: Option<Span>,
    /// `retries`, `timeout`, `catch`.
    pub options: StepOptionsDef,
    /// The method's signature, as far as the checks and expansion need it.
    pub sig: SignatureDef,
}

/// A step's transition as written.
pub enum TransitionDef {
    /// `next = a`.
    Linear { target: Ident },
    /// `next = [a, b, …]`.
    Branch { targets: Vec<Ident> },
    /// `foreach = field, next = body`.
    Foreach { field: Ident, body: Ident },
    /// `switch(PATTERN => step, …)`.
    Switch {
        keyword: Span,
        arms: Vec<SwitchArmDef>,
    },
}

/// `PATTERN => step` inside `switch(...)`.
pub struct SwitchArmDef {
    pub pat: Pat,
    pub target: Ident,
}

/// Options beside the transition.
#[derive(Default)]
pub struct StepOptionsDef {
    pub retries: u32,
    pub timeout_ms: Option<u64>,
    pub catch: Option<CatchDef>,
}

/// `catch` or `catch = field`.
pub struct CatchDef {
    pub field: Option<Ident>,
}

/// The parts of a step's signature that matter.
pub struct SignatureDef {
    /// The span of the whole signature's name, for "this step must take …" errors.
    pub ident_span: Span,
    /// Parameters typed `Inputs<…>` (a join's input).
    pub inputs_params: Vec<PatType>,
    /// Every other parameter after the receiver: foreach items.
    pub item_params: Vec<ItemParam>,
    /// What the method returns.
    pub output: OutputDef,
}

/// A parameter that is not the receiver nor `Inputs<…>`.
pub struct ItemParam {
    pub ty: Type,
    /// The whole parameter, `name: Type`, for errors that highlight it.
    pub param: PatType,
}

/// A step's return type, sorted by how expansion uses it.
pub enum OutputDef {
    /// No return type.
    Unit,
    /// A type whose last path segment is `Result`: `Result<T, E>`, `anyhow::Result<T>`, …
    Result { ty: Type },
    /// Any other type.
    Other { ty: Type },
}

/// The name `ident` stands for: raw identifiers unwrapped (`r#match` names the step `match`).
pub fn name_of(ident: &Ident) -> String {
    ident.unraw().to_string()
}

impl OutputDef {
    /// The return type as written, if any.
    pub fn ty(&self) -> Option<&Type> {
        match self {
            OutputDef::Unit => None,
            OutputDef::Result { ty } | OutputDef::Other { ty } => Some(ty),
        }
    }
}

impl TransitionDef {
    /// Every target this transition names, in source order.
    pub fn targets(&self) -> Vec<&Ident> {
        match self {
            TransitionDef::Linear { target } => vec![target],
            TransitionDef::Branch { targets } => targets.iter().collect(),
            TransitionDef::Foreach { body, .. } => vec![body],
            TransitionDef::Switch { arms, .. } => arms.iter().map(|a| &a.target).collect(),
        }
    }
}
