//! `resources(cpus = 8, memory = "64 GiB", gpus = 1)` inside `#[step(...)]`.
//!
//! Each bad entry is reported on its own token and the others are still read, so one typo is one
//! error. Memory is a string with a unit, never a bare number: Slurm reads `--mem=64` as MB and
//! Kubernetes reads `64` as bytes, so a number without its unit means nothing certain.

use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::{Ident, Lit, Token, parenthesized};

use super::list;
use crate::errors::Errors;
use crate::model::ResourcesDef;
use crate::suggest::closest;

/// The keys `resources(...)` accepts.
const KEYS: &[&str] = &["cpus", "memory", "gpus"];

/// The memory units, with their size in bytes: binary (IEC) and decimal (SI) units, spelt as the
/// IEC and SI standards spell them.
const UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];

const EXAMPLE: &str = "`resources(cpus = 8, memory = \"64 GiB\", gpus = 1)`";

/// Reads `resources(...)`; what could not be read is reported and left out.
pub fn parse_resources(meta: &ParseNestedMeta, errors: &mut Errors) -> syn::Result<ResourcesDef> {
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error(format!(
            "`resources` takes its values in parentheses: {EXAMPLE}"
        )));
    }
    let content;
    let parens = parenthesized!(content in meta.input);
    let mut def = ResourcesDef::default();
    let entries = read_entries(&content, &mut def, errors).inspect_err(|_| {
        // What is left after a syntax error would otherwise be reported again by syn.
        let _ = content.parse::<proc_macro2::TokenStream>();
    })?;
    if entries == 0 {
        errors.at(
            parens.span.join(),
            format!(
                "`resources()` asks for nothing: give at least one of {}, as in {EXAMPLE}",
                list(KEYS)
            ),
        );
    }
    Ok(def)
}

/// Reads `key = value, …` into `def`, reporting each bad entry; returns how many were written.
fn read_entries(
    content: &syn::parse::ParseBuffer,
    def: &mut ResourcesDef,
    errors: &mut Errors,
) -> syn::Result<usize> {
    let mut seen: Vec<String> = Vec::new();
    let mut entries = 0;
    while !content.is_empty() {
        let key = content.call(Ident::parse_any)?;
        content.parse::<Token![=]>()?;
        let value: Lit = content.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected a number or a string, as in {EXAMPLE}"),
            )
        })?;
        if !content.is_empty() {
            content.parse::<Token![,]>()?;
        }
        entries += 1;
        let name = key.to_string();
        if seen.contains(&name) {
            errors.at(key.span(), format!("duplicate resource `{name}`"));
            continue;
        }
        if KEYS.contains(&name.as_str()) {
            seen.push(name.clone());
        }
        let read = match name.as_str() {
            "cpus" => whole_number(&value, "cpus", 1).map(|n| def.cpus = Some(n)),
            "gpus" => whole_number(&value, "gpus", 0).map(|n| def.gpus = Some(n)),
            "memory" => memory(&value).map(|b| def.memory_bytes = Some(b)),
            _ => Err(syn::Error::new(
                key.span(),
                format!(
                    "unknown resource `{name}`; the resources are {}{}",
                    list(KEYS),
                    closest(&name, KEYS.iter().copied())
                        .map(|m| format!("; did you mean `{m}`?"))
                        .unwrap_or_default()
                ),
            )),
        };
        if let Err(e) = read {
            errors.push(e);
        }
    }
    Ok(entries)
}

/// `cpus = 8`, `gpus = 0`: a whole number of at least `min`.
fn whole_number(value: &Lit, key: &str, min: u32) -> syn::Result<u32> {
    let error = |message: String| Err(syn::Error::new(value.span(), message));
    match value {
        Lit::Int(i) => match i.base10_parse::<u32>() {
            Ok(n) if n >= min => Ok(n),
            Ok(_) => error(format!(
                "`{key}` is at least {min}: a step that needs no cpu still runs on one; leave \
                 `{key}` out to ask for nothing"
            )),
            Err(_) => error(format!("`{key}` takes a whole number up to {}", u32::MAX)),
        },
        Lit::Float(_) => error(format!(
            "`{key}` takes a whole number, e.g. `{key} = 2`: a fraction of a {} cannot be \
             reserved",
            key.trim_end_matches('s')
        )),
        _ => error(format!(
            "`{key}` takes a whole number, e.g. `{key} = {}`",
            if key == "gpus" { 1 } else { 8 }
        )),
    }
}

/// `memory = "64 GiB"`: a number (a decimal fraction allowed) and a unit, in bytes rounded up.
fn memory(value: &Lit) -> syn::Result<u64> {
    let units = UNITS.iter().map(|(u, _)| *u).collect::<Vec<_>>().join(", ");
    let Lit::Str(text) = value else {
        return Err(syn::Error::new(
            value.span(),
            format!(
                "`memory` takes a string with a unit, e.g. `memory = \"64 GiB\"`; the units \
                 are {units}"
            ),
        ));
    };
    match memory_bytes(&text.value()) {
        Ok(bytes) => Ok(bytes),
        Err(MemoryError::Unit(unit)) => Err(syn::Error::new(
            value.span(),
            format!(
                "unknown memory unit `{unit}`; the units are {units}{}",
                unit_hint(&unit)
            ),
        )),
        Err(MemoryError::Zero) => Err(syn::Error::new(
            value.span(),
            "`memory` must be more than zero",
        )),
        Err(MemoryError::TooLarge) => Err(syn::Error::new(
            value.span(),
            "`memory` is too large: at most 16 EiB",
        )),
        Err(MemoryError::Malformed) => Err(syn::Error::new(
            value.span(),
            format!(
                "`memory` takes a number and a unit, e.g. `\"64 GiB\"`, `\"1.5 GB\"`; the units are {units}"
            ),
        )),
    }
}

/// "did you mean" for a unit in another case (`Gb`, `gib`) or Slurm's one letter (`G`).
fn unit_hint(unit: &str) -> String {
    let meant = UNITS
        .iter()
        .map(|(u, _)| *u)
        .find(|u| u.eq_ignore_ascii_case(unit))
        .map(str::to_owned)
        .or_else(|| match unit {
            "K" | "k" | "M" | "m" | "G" | "g" | "T" | "t" => {
                Some(format!("{}iB", unit.to_ascii_uppercase()))
            }
            _ => None,
        });
    meant
        .map(|m| format!("; did you mean `{m}`?"))
        .unwrap_or_default()
}

#[derive(Debug, PartialEq, Eq)]
enum MemoryError {
    Unit(String),
    Zero,
    TooLarge,
    Malformed,
}

/// `"64 GiB"`, `"1.5GB"`, `" 100 MiB "` in bytes, rounded up to a whole byte.
fn memory_bytes(text: &str) -> Result<u64, MemoryError> {
    let text = text.trim();
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = (&text[..number_end], text[number_end..].trim());
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
        return Err(MemoryError::Malformed);
    }
    let Some(&(_, size)) = UNITS.iter().find(|(u, _)| *u == unit) else {
        return Err(if unit.is_empty() {
            MemoryError::Malformed
        } else {
            MemoryError::Unit(unit.to_owned())
        });
    };
    // Exact decimal arithmetic: `1.1 GB` is 1 100 000 000 bytes, not a float's approximation.
    let digits = format!("{whole}{fraction}");
    let scale = u32::try_from(fraction.len())
        .ok()
        .and_then(|n| 10u128.checked_pow(n))
        .ok_or(MemoryError::TooLarge)?;
    let mantissa: u128 = digits.trim_start_matches('0').parse().or_else(|_| {
        if digits.chars().all(|c| c == '0') {
            Ok(0)
        } else {
            Err(MemoryError::TooLarge)
        }
    })?;
    let bytes = mantissa
        .checked_mul(u128::from(size))
        .ok_or(MemoryError::TooLarge)?
        .div_ceil(scale);
    match u64::try_from(bytes) {
        Ok(0) => Err(MemoryError::Zero),
        Ok(b) => Ok(b),
        Err(_) => Err(MemoryError::TooLarge),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_reads_in_every_unit() {
        assert_eq!(memory_bytes("64 GiB"), Ok(64 << 30));
        assert_eq!(memory_bytes("100MiB"), Ok(100 << 20));
        assert_eq!(memory_bytes(" 2 TB "), Ok(2_000_000_000_000));
        assert_eq!(memory_bytes("1.5 GiB"), Ok(3 << 29));
        assert_eq!(memory_bytes("1.1 GB"), Ok(1_100_000_000));
        assert_eq!(memory_bytes("0.5 B"), Ok(1), "rounded up to a whole byte");
        assert_eq!(memory_bytes("512 B"), Ok(512));
        assert_eq!(memory_bytes("8 KB"), Ok(8_000));
    }

    #[test]
    fn bad_memory_says_what_is_wrong() {
        assert_eq!(memory_bytes("64 Gb"), Err(MemoryError::Unit("Gb".into())));
        assert_eq!(memory_bytes("64G"), Err(MemoryError::Unit("G".into())));
        assert_eq!(memory_bytes("64"), Err(MemoryError::Malformed));
        assert_eq!(memory_bytes("GiB"), Err(MemoryError::Malformed));
        assert_eq!(memory_bytes(""), Err(MemoryError::Malformed));
        assert_eq!(memory_bytes("1.2.3 GiB"), Err(MemoryError::Malformed));
        assert_eq!(memory_bytes("1. GiB"), Err(MemoryError::Malformed));
        assert_eq!(memory_bytes("-1 GiB"), Err(MemoryError::Malformed));
        assert_eq!(memory_bytes("0 GiB"), Err(MemoryError::Zero));
        assert_eq!(memory_bytes("0.0 MiB"), Err(MemoryError::Zero));
        assert_eq!(memory_bytes("16777216 TiB"), Err(MemoryError::TooLarge));
        assert_eq!(
            memory_bytes(&format!("{} TB", "9".repeat(60))),
            Err(MemoryError::TooLarge)
        );
        assert_eq!(
            memory_bytes(&format!("1.{} GB", "0".repeat(60))),
            Err(MemoryError::TooLarge),
            "a fraction too long to scale is refused, not a panic"
        );
    }

    #[test]
    fn unit_hints_name_the_standard_spelling() {
        assert_eq!(unit_hint("Gb"), "; did you mean `GB`?");
        assert_eq!(unit_hint("gib"), "; did you mean `GiB`?");
        assert_eq!(unit_hint("G"), "; did you mean `GiB`?");
        assert_eq!(unit_hint("parsecs"), "");
    }
}
