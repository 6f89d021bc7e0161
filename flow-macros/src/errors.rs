//! Collecting errors instead of stopping at the first one.

use std::fmt::Display;

use proc_macro2::Span;

/// The errors found so far; each becomes one `compile_error!` on its own span.
///
/// Like serde_derive's `Ctxt`, it must be finished with [`Errors::check`]: dropping it unchecked
/// panics, so a code path that collects errors and then forgets them fails every test that takes
/// it instead of silently expanding an invalid flow. The macro's own paths all end in `check`;
/// the panic is a tripwire for this crate's bugs, never a reaction to the user's input.
pub struct Errors {
    /// `None` once checked: what [`Drop`] looks at.
    errors: Option<Vec<syn::Error>>,
}

impl Errors {
    /// An empty collector, which must still be [`check`](Errors::check)ed.
    pub fn new() -> Self {
        Errors {
            errors: Some(Vec::new()),
        }
    }

    /// Records an error on `span`.
    pub fn at(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    /// Records an error spanning every token of `tokens`.
    pub fn spanned(&mut self, tokens: impl quote::ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error produced by syn.
    pub fn push(&mut self, error: syn::Error) {
        // `check` takes `self`, so the list is always there while the collector can be used.
        if let Some(errors) = &mut self.errors {
            errors.push(error);
        }
    }

    /// How many errors were recorded: comparing two counts says whether a phase found any.
    pub fn len(&self) -> usize {
        self.errors.as_ref().map_or(0, Vec::len)
    }

    /// Finishes collecting: `Err` holds every recorded error, in order, as one `syn::Error`
    /// whose `into_compile_error` gives one `compile_error!` per error, each on its own span.
    pub fn check(mut self) -> syn::Result<()> {
        let mut errors = self.errors.take().unwrap_or_default().into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for error in errors {
            combined.combine(error);
        }
        Err(combined)
    }
}

impl Drop for Errors {
    fn drop(&mut self) {
        // Not while unwinding: a second panic would abort the compiler instead of becoming the
        // "internal error" that `lib.rs` reports.
        if self.errors.is_some() && !std::thread::panicking() {
            panic!("flow-macros collected errors and never checked them: call `Errors::check`");
        }
    }
}

/// The messages of a checked collector's errors, in order; none for `Ok`.
#[cfg(test)]
pub fn messages(checked: syn::Result<()>) -> Vec<String> {
    match checked {
        Ok(()) => Vec::new(),
        Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_combined_in_order() {
        let mut errors = Errors::new();
        errors.at(Span::call_site(), "first");
        errors.push(syn::Error::new(Span::call_site(), "second"));
        assert_eq!(errors.len(), 2);
        assert_eq!(messages(errors.check()), ["first", "second"]);
        assert_eq!(messages(Errors::new().check()), Vec::<String>::new());
    }

    #[test]
    #[should_panic(expected = "never checked")]
    fn an_unchecked_collector_fails_loudly() {
        let mut errors = Errors::new();
        errors.at(Span::call_site(), "forgotten");
        drop(errors);
    }

    #[test]
    #[should_panic(expected = "never checked")]
    fn an_unchecked_empty_collector_fails_too() {
        // Whether errors were found is only known once checked: a path that forgets to check
        // is a bug even when this input happened to be valid.
        drop(Errors::new());
    }
}
