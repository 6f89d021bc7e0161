//! What the parser extracts from a `#[flow]` impl block: the input of the checks and of expansion.

use std::time::Duration;

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
    /// What kind of impl block `#[flow]` is on: whether it is checked, and what is emitted for it
    /// after an error.
    pub kind: ImplKind,
}

/// The impl blocks `#[flow]` reads, by what happens to them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ImplKind {
    /// `impl MyFlow { … }`, or steps written in a trait impl, read as the inherent impl that was
    /// meant: checked, and after an error given a dummy `Flow` implementation.
    Flow,
    /// `impl<T> MyFlow<T>` or a `where` clause (reported): checked, but given no dummy `Flow`
    /// implementation, whose type parameters it could not satisfy.
    Generic,
    /// A trait impl without any `#[step]`: the one error is that `#[flow]` is on the wrong block.
    /// Nothing else is checked, and the type, whose real `#[flow]` impl may be elsewhere, gets no
    /// dummy `Flow` implementation.
    Misplaced,
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
    /// Where the step goes, as far as the attribute could be read.
    pub transition: Transition,
    /// The `join` flag, with its span.
    pub join: Option<Span>,
    /// `retries`, `timeout`, `catch`, `resources`.
    pub options: StepOptionsDef,
    /// The method's signature, as far as the checks and expansion need it.
    pub sig: SignatureDef,
}

/// What a step's attribute says about where it goes.
pub enum Transition {
    /// No transition option: the step ends the flow, which only `end` may.
    Absent,
    /// A transition, read as written.
    Read(TransitionDef),
    /// A transition option was given but could not be read (a misspelt key, a malformed value,
    /// two conflicting options), and that was reported. What could be read is kept, `next = a`
    /// beside a misspelt `foreach`, so its target names are still checked; but the step's edges
    /// are incomplete, and the checks of the graph as a whole skip a flow that has one.
    Unreadable { partial: Option<TransitionDef> },
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
    /// More than zero, and at most `u64::MAX` milliseconds.
    pub timeout: Option<Duration>,
    pub catch: Option<CatchDef>,
    /// `max_iterations = N`, with the span of the key: only on a switch that closes a loop.
    pub max_iterations: Option<(u32, Span)>,
    /// `resources(...)`: what one task asks of its machine, as far as it could be read.
    pub resources: ResourcesDef,
}

/// `resources(cpus = N, memory = "…", gpus = N)`, validated; `None` where not asked.
#[derive(Default)]
pub struct ResourcesDef {
    /// At least 1.
    pub cpus: Option<u32>,
    /// More than zero, in bytes.
    pub memory_bytes: Option<u64>,
    pub gpus: Option<u32>,
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

impl ImplKind {
    /// Whether the block is checked as a flow: all but a misplaced `#[flow]`.
    pub fn is_checked(self) -> bool {
        self != ImplKind::Misplaced
    }
}

impl Transition {
    /// The transition's targets and kind, read in full or in part.
    pub fn def(&self) -> Option<&TransitionDef> {
        match self {
            Transition::Absent => None,
            Transition::Read(def) => Some(def),
            Transition::Unreadable { partial } => partial.as_ref(),
        }
    }

    /// Whether the attribute's transition could not be read (which was reported).
    pub fn is_unreadable(&self) -> bool {
        matches!(self, Transition::Unreadable { .. })
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
