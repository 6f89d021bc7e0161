//! What a join step receives: the end state of every branch it joins.
//!
//! States are loaded one at a time as the join iterates over them, so a join over a foreach of
//! 10,000 tasks never holds 10,000 states at once.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use crate::datastore::BlobHash;
use crate::flow::{Flow, StateOwned, StateRef, duplicate};
use serde::de::DeserializeOwned;

use crate::state::{decode_field, decode_state, encode_state};

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

/// The fields of one state: name, hash of the encoding (where to get the bytes), its size.
pub(crate) type FieldHashes = Vec<(String, BlobHash, u64)>;

/// Where a join's states come from: the datastore, or memory.
pub(crate) trait InputSource<F>: Send + Sync {
    fn len(&self) -> usize;
    fn step(&self, i: usize) -> &str;
    fn index(&self, i: usize) -> usize;
    fn load(&self, i: usize) -> Result<F, InputError>;
    fn fields(&self, i: usize) -> Result<FieldHashes, InputError>;
    fn base_fields(&self) -> Result<FieldHashes, InputError>;
    fn field_bytes(&self, hash: &BlobHash) -> Result<Vec<u8>, InputError>;
    /// The encoding of input `i`'s field `name`, verified; `None` if the input has no such
    /// field (a state stored before the field existed).
    fn field_value(&self, i: usize, name: &str) -> Result<Option<Arc<Vec<u8>>>, InputError>;
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

    /// One field of every branch, in order, reading that field's artifact alone: the join
    /// `self.total = inputs.values(|s| &s.loss).sum()` reads one small artifact per branch
    /// where `inputs.iter().map(|i| i.loss).sum()` decodes every branch's whole state.
    ///
    /// `field` names the field (`|s| &s.loss`); it is called once, on the flow's default state,
    /// to tell which stored field it is (see `state::field_at`); a projection that panics there
    /// (`|s| &s.runs[0]` on an empty default) is caught (its message still reaches the task's
    /// log) and applied to whole states. A field stored through an adapter
    /// (`#[serde(with = …)]`), a projection that is not one top-level field (`|s| &s.a.b`), or
    /// a branch stored before the field existed is answered all the same, by decoding whole
    /// states and projecting them. The field's artifact is decoded with its type's own
    /// `Deserialize`, so a field with `#[serde(deserialize_with = …)]` reads differently from
    /// [`Inputs::iter`]: use that for such a field.
    ///
    /// # Panics
    /// When an input cannot be read from the datastore: the step then fails with the message.
    pub fn values<T, P>(&self, field: P) -> impl ExactSizeIterator<Item = T> + '_
    where
        T: DeserializeOwned + Clone,
        P: for<'s> Fn(&'s F) -> &'s T + 'static,
    {
        let mut values = self.try_values(field);
        (0..self.len()).map(move |i| match values.next() {
            Some(Ok(value)) => value,
            Some(Err(e)) => panic!("cannot load input {i} of the join: {e}"),
            None => panic!("input {i} of the join is missing"),
        })
    }

    /// [`Inputs::values`], handing back why an input could not be read instead of failing.
    pub fn try_values<T, P>(
        &self,
        field: P,
    ) -> impl ExactSizeIterator<Item = Result<T, InputError>> + '_
    where
        T: DeserializeOwned + Clone,
        P: for<'s> Fn(&'s F) -> &'s T + 'static,
    {
        let probe: F = crate::flow::initial();
        // A projection that is more than a field (`|s| &s.runs[0]`) may panic on the default
        // state: it is then applied to whole states only.
        let name =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| field(&probe) as *const T))
                .ok()
                .and_then(|address| crate::state::field_at(&StateRef(&probe), address));
        drop(probe);
        (0..self.len()).map(move |i| {
            if let Some(name) = &name
                && let Some(bytes) = self.source.field_value(i, name)?
            {
                return decode_field::<T>(&bytes).map_err(|e| {
                    InputError::new(format!(
                        "input {i} of the join, field `{name}` could not be decoded: {e}"
                    ))
                });
            }
            let state = self.source.load(i)?;
            Ok(field(&state).clone())
        })
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
    ///
    /// Fields are compared by their stored encoding, so that nothing needs decoding, with two
    /// provisions for values whose encoding depends on more than their value:
    ///
    /// - `HashMap`s and `HashSet`s (std's, hashbrown's, and types whose name ends so, such as
    ///   ahash's) are stored with their entries sorted, so equal ones encode alike wherever they
    ///   are nested;
    /// - when two encodings of a field differ, they are compared again with every map's entries
    ///   in sorted order, for maps of other types (a wrapper around a `HashMap` with its own
    ///   name). This second look is skipped for encodings over 16 MiB, which are compared as
    ///   they are; it also means a change that only reorders an ordered map (an `IndexMap`) is
    ///   not seen as a change.
    ///
    /// What neither catches is a set-like type of another name that serializes as a sequence in
    /// its hasher's order: two equal ones may look different, and the merge may report a
    /// conflict where nothing changed, or take the join's own copy (decoded from the base, so
    /// encoded in another order) for one it set itself and keep it instead of a branch's
    /// change. Name such a type
    /// `…HashSet`, serialize it sorted, or pass its field to
    /// [`Inputs::merge_artifacts_except`].
    pub fn merge_artifacts(&self, target: &mut F) -> Result<(), MergeError> {
        self.merge_artifacts_except(target, &[])
    }

    /// [`Inputs::merge_artifacts`], leaving the fields in `except` alone.
    pub fn merge_artifacts_except(
        &self,
        target: &mut F,
        except: &[&str],
    ) -> Result<(), MergeError> {
        let stored = |fields: FieldHashes| -> BTreeMap<String, Stored> {
            fields
                .into_iter()
                .map(|(name, hash, size)| (name, Stored { hash, size }))
                .collect()
        };
        let base = stored(self.source.base_fields().map_err(MergeError::Input)?);
        let inputs: Vec<BTreeMap<String, Stored>> = (0..self.len())
            .map(|i| self.source.fields(i).map(stored))
            .collect::<Result<_, _>>()
            .map_err(MergeError::Input)?;
        let mut own = encode_state(&StateRef(&*target))
            .map_err(|e| MergeError::Input(InputError::new(e.to_string())))?;
        let own_values: Vec<Stored> = own
            .iter()
            .map(|f| Stored {
                hash: BlobHash::of(&f.bytes),
                size: f.bytes.len() as u64,
            })
            .collect();
        let mut same = Equality {
            source: &*self.source,
            own: &own,
            own_values: &own_values,
            forms: HashMap::new(),
        };
        let names: BTreeSet<&String> = inputs.iter().flat_map(|m| m.keys()).collect();
        let mut take: Vec<(String, BlobHash)> = Vec::new();
        let mut conflicts = Vec::new();
        for name in names {
            if except.contains(&name.as_str()) {
                continue;
            }
            let own_value = own
                .iter()
                .position(|f| &f.name == name)
                .map(|i| own_values[i]);
            let base_value = base.get(name).copied();
            let set_by_join = match (own_value, base_value) {
                (None, None) => false,
                (Some(own), Some(base)) => !same.equal(own, base)?,
                // Set (or, skipped when serializing, unset) by the join.
                _ => true,
            };
            if set_by_join {
                continue;
            }
            // The distinct changes the branches made, and which branches made a change.
            let mut changes: Vec<Stored> = Vec::new();
            let mut changed_by: BTreeSet<String> = BTreeSet::new();
            for (i, value) in inputs
                .iter()
                .enumerate()
                .filter_map(|(i, m)| m.get(name).map(|v| (i, *v)))
            {
                let changed = if changes.len() > 1 {
                    // A conflict already: name the branches without reading more blobs.
                    base_value.is_none_or(|base| base.hash != value.hash)
                } else {
                    match base_value {
                        Some(base) => !same.equal(value, base)?,
                        None => true,
                    }
                };
                if !changed {
                    continue;
                }
                changed_by.insert(format!("`{}`", self.source.step(i)));
                if changes.len() < 2 {
                    let mut known = false;
                    for change in &changes {
                        if same.equal(*change, value)? {
                            known = true;
                            break;
                        }
                    }
                    if !known {
                        changes.push(value);
                    }
                }
            }
            match changes.as_slice() {
                [] => {}
                [change] => take.push((name.clone(), change.hash)),
                _ => conflicts.push((name.clone(), changed_by.into_iter().collect())),
            }
        }
        drop(same);
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

/// A field's stored value: the hash and size of its encoding.
#[derive(Debug, Clone, Copy)]
struct Stored {
    hash: BlobHash,
    size: u64,
}

/// Encodings over this size are compared as they are, without sorting their maps: reading and
/// rewriting them would cost more than the merge is worth, and they are rarely maps.
const UNORDERED_COMPARISON_LIMIT: u64 = 16 << 20;

/// Tells whether two stored values are equal: their encodings are, or their encodings with every
/// map's entries sorted are (see [`Inputs::merge_artifacts`]). The sorted forms are computed once
/// per encoding, and only when two encodings differ.
struct Equality<'s, F> {
    source: &'s dyn InputSource<F>,
    /// The join's own fields, which are not in the datastore, and their hashes.
    own: &'s [crate::state::EncodedField],
    own_values: &'s [Stored],
    /// The hash of each encoding's sorted form, `None` where it could not be computed.
    forms: HashMap<BlobHash, Option<BlobHash>>,
}

impl<F> Equality<'_, F> {
    fn equal(&mut self, a: Stored, b: Stored) -> Result<bool, MergeError> {
        if a.hash == b.hash {
            return Ok(true);
        }
        if a.size.max(b.size) > UNORDERED_COMPARISON_LIMIT {
            return Ok(false);
        }
        let (a, b) = (self.form(a.hash)?, self.form(b.hash)?);
        Ok(a.is_some() && a == b)
    }

    fn form(&mut self, hash: BlobHash) -> Result<Option<BlobHash>, MergeError> {
        if let Some(form) = self.forms.get(&hash) {
            return Ok(*form);
        }
        let own = self.own_values.iter().position(|v| v.hash == hash);
        let bytes = match own.and_then(|i| self.own.get(i)) {
            Some(field) => Cow::Borrowed(field.bytes.as_slice()),
            None => Cow::Owned(self.source.field_bytes(&hash).map_err(MergeError::Input)?),
        };
        // Damaged bytes compare unequal to everything; loading them reports the damage.
        let form = crate::state::canonical::unordered_maps(&bytes)
            .ok()
            .map(|form| BlobHash::of(&form));
        self.forms.insert(hash, form);
        Ok(form)
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
        .map(|f| (f.name, BlobHash::of(&f.bytes), f.bytes.len() as u64))
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
    fn field_value(&self, i: usize, name: &str) -> Result<Option<Arc<Vec<u8>>>, InputError> {
        let fields = encode_state(&StateRef(&self.states[i].1))
            .map_err(|e| InputError::new(e.to_string()))?;
        Ok(fields
            .into_iter()
            .find(|f| f.name == name)
            .map(|f| Arc::new(f.bytes)))
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
