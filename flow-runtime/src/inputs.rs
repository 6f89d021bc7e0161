//! What a join step receives: the end state of every branch it joins.

use std::ops::Index;

/// One branch's end state, as a join step sees it.
#[derive(Debug, Clone)]
pub struct Input<F> {
    step: &'static str,
    index: usize,
    state: F,
}

/// The end states of every branch a join step joins, in branch order (the order of
/// `next = [...]`, or of the foreach's elements).
///
/// Index it by position (`inputs[0]`), look a branch up by the step it ended in
/// ([`Inputs::from_step`]), or iterate over it.
#[derive(Debug, Clone)]
pub struct Inputs<F> {
    inputs: Vec<Input<F>>,
}

impl<F> Input<F> {
    /// An input: the end state `state` of the branch that ended in step `step`, at position `index`.
    pub fn new(step: &'static str, index: usize, state: F) -> Self {
        Input { step, index, state }
    }

    /// The name of the step this branch ended in.
    pub fn step(&self) -> &'static str {
        self.step
    }

    /// The position of this branch among the join's inputs (the foreach index for a foreach).
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

impl<F> Inputs<F> {
    /// The inputs of a join, in branch order.
    pub fn new(inputs: Vec<Input<F>>) -> Self {
        Inputs { inputs }
    }

    /// How many branches were joined.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether no branch was joined (a foreach over no elements).
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// The branch that ended in step `step`; for a foreach, the first one.
    pub fn from_step(&self, step: &str) -> Option<&Input<F>> {
        self.inputs.iter().find(|i| i.step == step)
    }

    /// The branches in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Input<F>> {
        self.inputs.iter()
    }
}

impl<F> Index<usize> for Inputs<F> {
    type Output = Input<F>;
    fn index(&self, index: usize) -> &Input<F> {
        &self.inputs[index]
    }
}

impl<'a, F> IntoIterator for &'a Inputs<F> {
    type Item = &'a Input<F>;
    type IntoIter = std::slice::Iter<'a, Input<F>>;
    fn into_iter(self) -> Self::IntoIter {
        self.inputs.iter()
    }
}

impl<F> IntoIterator for Inputs<F> {
    type Item = Input<F>;
    type IntoIter = std::vec::IntoIter<Input<F>>;
    fn into_iter(self) -> Self::IntoIter {
        self.inputs.into_iter()
    }
}
