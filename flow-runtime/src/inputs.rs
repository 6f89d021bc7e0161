//! What a join step receives: the end state of every branch it joins.
//!
//! States are loaded one at a time as the join iterates over them, so a join over a foreach of
//! 10,000 tasks never holds 10,000 states at once.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::sync::Arc;

use crate::datastore::BlobHash;
use crate::flow::{Flow, StateOwned, StateRef, duplicate};
use crate::state::{decode_state, encode_state};

/// One branch's end state, as a join step sees it. Dereferences to the state.
#[derive(Debug, Clone)]
pub struct Input<F> {
    step: String,
    index: usize,
    state: F,
}

impl<F> Input<F> {
    /// The name of the step this branch ended in.
    pub fn step(&self) -> &str {
        &self.step
    }

    /// The position of this branch among the join's inputs: the branch number, or the foreach
    /// element's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The branch's end state.
    pub fn state(&self) -> &F {
        &self.state
    }

    /// Takes the branch's end state.
    pub fn into_state(self) -> F {
        self.state
    }
}

impl<F> std::ops::Deref for Input<F> {
    type Target = F;
    fn deref(&self) -> &F {
        &self.state
    }
}

/// Why an input could not be loaded or merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    message: String,
}

impl InputError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        InputError {
            message: message.into(),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InputError {}

/// A field two branches changed differently, found by [`Inputs::merge_artifacts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeConflict {
    /// The conflicting fields, each with the steps whose values differ.
    pub fields: Vec<(String, Vec<String>)>,
}

impl fmt::Display for MergeConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot merge: ")?;
        for (i, (field, steps)) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(
                f,
                "field `{field}` was changed differently by {}",
                steps.join(", ")
            )?;
        }
        f.write_str(
            ". Set these fields in the join before merging, or pass them to merge_artifacts_except",
        )
    }
}

impl std::error::Error for MergeConflict {}

/// The fields of one state: name → (hash of the encoding, where to get the bytes).
pub(crate) type FieldHashes = Vec<(String, BlobHash)>;

/// Where a join's states come from: the datastore, or memory.
pub(crate) trait InputSource<F>: Send + Sync {
    fn len(&self) -> usize;
    fn step(&self, i: usize) -> &str;
    fn index(&self, i: usize) -> usize;
    fn load(&self, i: usize) -> Result<F, InputError>;
    fn fields(&self, i: usize) -> Result<FieldHashes, InputError>;
    fn base_fields(&self) -> Result<FieldHashes, InputError>;
    fn field_bytes(&self, hash: &BlobHash) -> Result<Vec<u8>, InputError>;
}

/// The end states of every branch a join step joins, in branch order (the order of
/// `next = [...]`, or of the foreach's elements).
///
/// Iterate over it (`inputs.iter()`), take one branch by position ([`Inputs::get`]) or by the
/// step it ended in ([`Inputs::from_step`]), or merge the fields the branches agree on into the
/// join's own state with [`Inputs::merge_artifacts`].
///
/// A state is loaded from the datastore when it is reached and dropped after, so iterating twice
/// loads twice. [`Inputs::iter`] fails the step if an input cannot be read (a damaged datastore);
/// [`Inputs::try_iter`] hands back the error instead.
pub struct Inputs<F> {
    source: Arc<dyn InputSource<F>>,
}

impl<F> fmt::Debug for Inputs<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inputs")
            .field("len", &self.source.len())
            .finish()
    }
}

impl<F: Flow> Inputs<F> {
    /// Inputs held in memory: `(step, state)` per branch. For tests of join steps.
    pub fn from_states(base: F, states: Vec<(String, F)>) -> Self {
        Inputs {
            source: Arc::new(MemorySource { base, states }),
        }
    }

    pub(crate) fn from_source(source: Arc<dyn InputSource<F>>) -> Self {
        Inputs { source }
    }

    /// Another handle on the same inputs (for a retry: the step consumes its `Inputs`).
    pub(crate) fn clone_handle(&self) -> Self {
        Inputs {
            source: Arc::clone(&self.source),
        }
    }

    /// How many branches were joined.
    pub fn len(&self) -> usize {
        self.source.len()
    }

    /// Whether no branch was joined (a foreach over no elements).
    pub fn is_empty(&self) -> bool {
        self.source.len() == 0
    }

    /// The branch at `position`, loaded; `None` past the end.
    ///
    /// # Panics
    /// When the input cannot be read from the datastore: the step then fails with the message.
    pub fn get(&self, position: usize) -> Option<Input<F>> {
        (position < self.len()).then(|| self.load_or_fail(position))
    }

    /// The branch at `position`, or why it could not be loaded.
    pub fn try_get(&self, position: usize) -> Option<Result<Input<F>, InputError>> {
        (position < self.len()).then(|| self.load(position))
    }

    /// The first branch that ended in step `step`.
    ///
    /// # Panics
    /// When the input cannot be read from the datastore.
    pub fn from_step(&self, step: &str) -> Option<Input<F>> {
        (0..self.len())
            .find(|&i| self.source.step(i) == step)
            .map(|i| self.load_or_fail(i))
    }

    /// The steps the branches ended in, in order, without loading any state.
    pub fn steps(&self) -> Vec<&str> {
        (0..self.len()).map(|i| self.source.step(i)).collect()
    }

    /// Every branch in order, each loaded when reached.
    ///
    /// # Panics
    /// When an input cannot be read from the datastore: the step then fails with the message.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Input<F>> + '_ {
        (0..self.len()).map(|i| self.load_or_fail(i))
    }

    /// Every branch in order, or why it could not be loaded.
    pub fn try_iter(&self) -> impl ExactSizeIterator<Item = Result<Input<F>, InputError>> + '_ {
        (0..self.len()).map(|i| self.load(i))
    }

    fn load(&self, i: usize) -> Result<Input<F>, InputError> {
        Ok(Input {
            step: self.source.step(i).to_string(),
            index: self.source.index(i),
            state: self.source.load(i)?,
        })
    }

    fn load_or_fail(&self, i: usize) -> Input<F> {
        match self.load(i) {
            Ok(input) => input,
            Err(e) => panic!("cannot load input {i} of the join: {e}"),
        }
    }

    /// Copies into `target` every field the branches agree on: a field that all branches left
    /// equal, or that exactly one branch changed (compared with the state before the split).
    ///
    /// Fields the join step already changed itself are left as they are: that is how a conflict
    /// is resolved. A field that two branches changed differently, and that the join did not
    /// set, is a [`MergeConflict`] and nothing is merged.
    pub fn merge_artifacts(&self, target: &mut F) -> Result<(), MergeError> {
        self.merge_artifacts_except(target, &[])
    }

    /// [`Inputs::merge_artifacts`], leaving the fields in `except` alone.
    pub fn merge_artifacts_except(
        &self,
        target: &mut F,
        except: &[&str],
    ) -> Result<(), MergeError> {
        let base: BTreeMap<String, BlobHash> = self
            .source
            .base_fields()
            .map_err(MergeError::Input)?
            .into_iter()
            .collect();
        let inputs: Vec<BTreeMap<String, BlobHash>> = (0..self.len())
            .map(|i| self.source.fields(i).map(|f| f.into_iter().collect()))
            .collect::<Result<_, _>>()
            .map_err(MergeError::Input)?;
        let mut own = encode_state(&StateRef(&*target))
            .map_err(|e| MergeError::Input(InputError::new(e.to_string())))?;
        let names: BTreeSet<&String> = inputs.iter().flat_map(|m| m.keys()).collect();
        let mut take: Vec<(String, BlobHash)> = Vec::new();
        let mut conflicts = Vec::new();
        for name in names {
            if except.contains(&name.as_str()) {
                continue;
            }
            let own_hash = own
                .iter()
                .find(|f| &f.name == name)
                .map(|f| BlobHash::of(&f.bytes));
            let base_hash = base.get(name);
            if own_hash.is_some() && own_hash.as_ref() != base_hash {
                continue; // set by the join itself
            }
            let values: Vec<(usize, &BlobHash)> = inputs
                .iter()
                .enumerate()
                .filter_map(|(i, m)| m.get(name).map(|h| (i, h)))
                .collect();
            let distinct: HashSet<&BlobHash> = values.iter().map(|(_, h)| *h).collect();
            let chosen = if distinct.len() == 1 {
                values.first().map(|(_, h)| **h)
            } else {
                let changed: HashSet<&BlobHash> = values
                    .iter()
                    .map(|(_, h)| *h)
                    .filter(|h| Some(*h) != base_hash)
                    .collect();
                if changed.len() == 1 {
                    changed.into_iter().next().copied()
                } else {
                    let steps: BTreeSet<String> = values
                        .iter()
                        .filter(|(_, h)| Some(*h) != base_hash)
                        .map(|(i, _)| format!("`{}`", self.source.step(*i)))
                        .collect();
                    conflicts.push((name.clone(), steps.into_iter().collect()));
                    None
                }
            };
            if let Some(hash) = chosen
                && own_hash != Some(hash)
            {
                take.push((name.clone(), hash));
            }
        }
        if !conflicts.is_empty() {
            return Err(MergeError::Conflict(MergeConflict { fields: conflicts }));
        }
        if take.is_empty() {
            return Ok(());
        }
        for (name, hash) in &take {
            let bytes = self.source.field_bytes(hash).map_err(MergeError::Input)?;
            match own.iter_mut().find(|f| &f.name == name) {
                Some(field) => field.bytes = bytes,
                None => own.push(crate::state::EncodedField {
                    name: name.clone(),
                    type_name: "",
                    bytes,
                }),
            }
        }
        let fields: Vec<(&str, &[u8])> = own
            .iter()
            .map(|f| (f.name.as_str(), f.bytes.as_slice()))
            .collect();
        let merged: StateOwned<F> =
            decode_state(&fields).map_err(|e| MergeError::Input(InputError::new(e.to_string())))?;
        *target = merged.0;
        Ok(())
    }
}

/// Why [`Inputs::merge_artifacts`] merged nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeError {
    /// Two branches changed a field differently.
    Conflict(MergeConflict),
    /// An input could not be read.
    Input(InputError),
}

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MergeError::Conflict(c) => c.fmt(f),
            MergeError::Input(e) => write!(f, "cannot merge: {e}"),
        }
    }
}

impl std::error::Error for MergeError {}

impl<'a, F: Flow> IntoIterator for &'a Inputs<F> {
    type Item = Input<F>;
    type IntoIter = Box<dyn ExactSizeIterator<Item = Input<F>> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// Inputs held in memory.
struct MemorySource<F> {
    base: F,
    states: Vec<(String, F)>,
}

fn hashes_of<F: Flow>(state: &F) -> Result<FieldHashes, InputError> {
    let fields = encode_state(&StateRef(state)).map_err(|e| InputError::new(e.to_string()))?;
    Ok(fields
        .into_iter()
        .map(|f| (f.name, BlobHash::of(&f.bytes)))
        .collect())
}

impl<F: Flow> InputSource<F> for MemorySource<F> {
    fn len(&self) -> usize {
        self.states.len()
    }
    fn step(&self, i: usize) -> &str {
        &self.states[i].0
    }
    fn index(&self, i: usize) -> usize {
        i
    }
    fn load(&self, i: usize) -> Result<F, InputError> {
        Ok(duplicate(&self.states[i].1))
    }
    fn fields(&self, i: usize) -> Result<FieldHashes, InputError> {
        hashes_of(&self.states[i].1)
    }
    fn base_fields(&self) -> Result<FieldHashes, InputError> {
        hashes_of(&self.base)
    }
    fn field_bytes(&self, hash: &BlobHash) -> Result<Vec<u8>, InputError> {
        for state in std::iter::once(&self.base).chain(self.states.iter().map(|(_, s)| s)) {
            let fields =
                encode_state(&StateRef(state)).map_err(|e| InputError::new(e.to_string()))?;
            if let Some(f) = fields.into_iter().find(|f| BlobHash::of(&f.bytes) == *hash) {
                return Ok(f.bytes);
            }
        }
        Err(InputError::new(format!(
            "no input holds a field with hash {hash}"
        )))
    }
}
