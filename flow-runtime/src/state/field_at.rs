//! Which stored field a place in a state is: how `Inputs::values` turns a projection such as
//! `|s| &s.loss` into the one artifact it needs to read.
//!
//! The state's own `Serialize` impl is run over a probe value with a [`FieldSink`] that only
//! looks at where each field's value lives in memory. A derived impl hands serde a reference to
//! the field itself (`serialize_field("loss", &self.loss)`), so the field whose reference is the
//! projection's, with the same type, is the one stored under that name. Anything else (a field
//! serialized through an adapter, `#[serde(with = …)]`, hands over a temporary; a value computed
//! on the fly; two zero-sized fields at one address) matches nothing, or more than one, and the
//! caller falls back to decoding whole states.

use std::convert::Infallible;

use serde::Serialize;

use super::{FieldSink, split_state};

/// The serialized name of the one top-level field of `state` whose value is the `T` at
/// `address`, if exactly one is.
pub(crate) fn field_at<F: Serialize + ?Sized, T: ?Sized>(
    state: &F,
    address: *const T,
) -> Option<String> {
    let mut sink = AddressSink {
        address: address.cast::<()>() as usize,
        type_name: std::any::type_name::<T>(),
        found: Vec::new(),
    };
    split_state(state, &mut sink).ok()?;
    match <[String; 1]>::try_from(sink.found) {
        Ok([name]) => Some(name),
        Err(_) => None,
    }
}

struct AddressSink {
    address: usize,
    type_name: &'static str,
    found: Vec<String>,
}

impl FieldSink for AddressSink {
    type Error = Infallible;

    fn field<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        _type_name: &'static str,
        value: &T,
    ) -> Result<(), Infallible> {
        let address = (value as *const T).cast::<()>() as usize;
        if address == self.address && std::any::type_name::<T>() == self.type_name {
            self.found.push(name.to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::field_at;

    #[derive(Serialize, Default)]
    struct State {
        loss: f64,
        #[serde(rename = "learning_rate")]
        lr: f64,
        #[serde(with = "serde_bytes")]
        raw: Vec<u8>,
        empty: (),
        also_empty: (),
        #[serde(flatten)]
        inner: Inner,
    }

    #[derive(Serialize, Default)]
    struct Inner {
        epochs: u32,
    }

    #[test]
    fn a_field_is_found_by_its_place_under_its_serialized_name() {
        let state = State::default();
        assert_eq!(field_at(&state, &state.loss).as_deref(), Some("loss"));
        assert_eq!(
            field_at(&state, &state.lr).as_deref(),
            Some("learning_rate")
        );
        assert_eq!(
            field_at(&state, &state.inner.epochs).as_deref(),
            Some("epochs")
        );
    }

    #[test]
    fn what_is_not_plainly_one_field_matches_nothing() {
        let state = State::default();
        // Serialized through an adapter: serde sees a temporary, not the field.
        assert_eq!(field_at(&state, &state.raw), None);
        // Nested, of another type than the field that starts at the same place.
        assert_eq!(field_at(&state, &state.inner), None);
        // Somewhere else entirely.
        let elsewhere = 1.5f64;
        assert_eq!(field_at(&state, &elsewhere), None);
        // Two zero-sized fields may share an address: no guess between them.
        if std::ptr::eq(&state.empty, &state.also_empty) {
            assert_eq!(field_at(&state, &state.empty), None);
        }
    }
}
