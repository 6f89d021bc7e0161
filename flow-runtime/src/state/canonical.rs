//! A form of a stored value in which maps are compared regardless of the order of their entries.
//!
//! The artifact encoder writes std's and hashbrown's hash collections sorted already; this is for
//! the ones it cannot recognise by their type (a type of another name around a `HashMap`), whose
//! encoding still follows their hasher. `Inputs::merge_artifacts` compares such fields in this
//! form before it calls one changed.

use std::borrow::Cow;

use rmp_serde::decode::Error;

use super::bounded::{self, KINDS, Kind, read_len};

/// `bytes` (one stored MessagePack value) with the entries of every map sorted by their encoded
/// bytes, once their own maps are sorted: values that differ only in the order of some map's
/// entries have the same form. Borrowed when the value holds no map.
///
/// Only for comparing: an ordered map (an `IndexMap`) loses its order here, and the form may
/// not decode to the type (a struct's fields are reordered too).
///
/// # Errors
///
/// `bytes` fail [`bounded::check`].
pub fn unordered_maps(bytes: &[u8]) -> Result<Cow<'_, [u8]>, Error> {
    if !bounded::scan(bytes)? {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::with_capacity(bytes.len());
    canonical(bytes, 0, &mut out)?;
    Ok(Cow::Owned(out))
}

/// Appends the form of the value at `pos` to `out` and returns where the value ends.
///
/// `bytes` passed [`bounded::check`]: every length fits and the nesting, hence this recursion,
/// is at most [`bounded::MAX_DEPTH`] deep.
fn canonical(bytes: &[u8], pos: usize, out: &mut Vec<u8>) -> Result<usize, Error> {
    let marker = *bytes.get(pos).ok_or_else(|| cut_short(pos))?;
    let (header, count, map) = match KINDS[usize::from(marker)] {
        Kind::FixArray(n) => (1, u64::from(n), false),
        Kind::FixMap(n) => (1, u64::from(n), true),
        Kind::Array(width) => (
            1 + usize::from(width),
            read_len(bytes, pos + 1, width)?,
            false,
        ),
        Kind::Map(width) => (
            1 + usize::from(width),
            read_len(bytes, pos + 1, width)?,
            true,
        ),
        kind => {
            let end = scalar_end(bytes, pos, kind)?;
            out.extend_from_slice(bytes.get(pos..end).ok_or_else(|| cut_short(end))?);
            return Ok(end);
        }
    };
    out.extend_from_slice(bytes.get(pos..pos + header).ok_or_else(|| cut_short(pos))?);
    let mut at = pos + header;
    if !map {
        for _ in 0..count {
            at = canonical(bytes, at, out)?;
        }
        return Ok(at);
    }
    // `check` made sure that `count` entries fit in the bytes.
    let mut entries: Vec<Vec<u8>> = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        let mut entry = Vec::new();
        at = canonical(bytes, at, &mut entry)?;
        at = canonical(bytes, at, &mut entry)?;
        entries.push(entry);
    }
    // Encodings are prefix-free: this orders by key, then by value.
    entries.sort_unstable();
    for entry in entries {
        out.extend_from_slice(&entry);
    }
    Ok(at)
}

/// Where the value at `pos`, which is not an array or map, ends.
fn scalar_end(bytes: &[u8], pos: usize, kind: Kind) -> Result<usize, Error> {
    let (start, data) = match kind {
        Kind::Fixed(size) => return Ok(pos + usize::from(size)),
        Kind::Data(width) => (
            pos + 1 + usize::from(width),
            read_len(bytes, pos + 1, width)?,
        ),
        Kind::Ext(width) => (
            pos + 2 + usize::from(width),
            read_len(bytes, pos + 1, width)?,
        ),
        _ => return Err(Error::Syntax(format!("no scalar at byte {pos}"))),
    };
    usize::try_from(data)
        .ok()
        .and_then(|data| start.checked_add(data))
        .ok_or_else(|| cut_short(start))
}

#[cold]
fn cut_short(pos: usize) -> Error {
    Error::Syntax(format!("the value is cut short at byte {pos}"))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;

    /// A map that serializes in its hasher's order, under a name the encoder does not know.
    struct Bag(HashMap<String, Vec<u32>>);

    impl serde::Serialize for Bag {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter())
        }
    }

    fn bag(reverse: bool) -> Bag {
        let mut keys: Vec<u32> = (0..50).collect();
        if reverse {
            keys.reverse();
        }
        Bag(keys
            .into_iter()
            .map(|k| (format!("k{k}"), vec![k; 3]))
            .collect())
    }

    fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        crate::state::encode_field(&mut out, value).expect("encodes");
        out
    }

    #[test]
    fn maps_that_differ_only_in_order_have_one_form() {
        let (a, b) = (encode(&vec![bag(false)]), encode(&vec![bag(true)]));
        assert_ne!(a, b, "the premise: the encoder keeps the hasher's order");
        assert_eq!(
            unordered_maps(&a).expect("form"),
            unordered_maps(&b).expect("form")
        );
        let mut changed = bag(false);
        changed.0.insert("k0".into(), vec![1]);
        assert_ne!(
            unordered_maps(&encode(&vec![changed])).expect("form"),
            unordered_maps(&a).expect("form")
        );
        // The form is a valid encoding with the same entries.
        let form: BTreeMap<String, Vec<u32>> =
            rmp_serde::from_slice(&unordered_maps(&encode(&bag(true))).expect("form"))
                .expect("decodes");
        assert_eq!(form.len(), 50);
    }

    #[test]
    fn a_value_without_maps_is_its_own_form_and_damage_is_an_error() {
        let floats = encode(&vec![1.5f32; 1000]);
        assert!(matches!(unordered_maps(&floats), Ok(Cow::Borrowed(_))));
        assert!(unordered_maps(&floats[..floats.len() - 1]).is_err());
        assert!(unordered_maps(&[0x81, 0x01]).is_err());
    }
}
