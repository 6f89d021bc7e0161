//! A blob's name: [`BlobHash`], the BLAKE3 hash of its bytes, and the key it is stored under.
//!
//! Kept apart from the blob store so that the task index (which records hashes) and the
//! backends (the S3 one writes blob keys without a conditional request) can name blobs without
//! depending on how blobs are written.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::keys::Key;

/// The prefix all blobs live under.
pub const BLOB_PREFIX: &str = "blobs";

/// The BLAKE3 hash of a blob's bytes, which is also its name.
///
/// Shown and serialized as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlobHash(blake3::Hash);

impl BlobHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        BlobHash(blake3::hash(bytes))
    }

    /// The hash a BLAKE3 hasher computed over a blob's bytes, streamed.
    pub(super) fn from_blake3(hash: blake3::Hash) -> Self {
        BlobHash(hash)
    }

    /// The 32 bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The blob `key` names, if it names one (`blobs/<2 hex>/<64 hex>`, the two digits starting
    /// the 64); `None` for any other key (a damaged copy set aside, a foreign name).
    pub fn of_key(key: &Key) -> Option<BlobHash> {
        if !is_blob_key(key) {
            return None;
        }
        key.name().parse().ok()
    }

    /// The prefix every blob's key is under: `blobs`.
    pub fn prefix() -> Key {
        Key::segment(BLOB_PREFIX).unwrap_or_else(|e| unreachable!("`blobs` is a segment: {e}"))
    }

    /// The key of the blob with this hash: `blobs/<first two hex digits>/<hex>`.
    pub fn key(&self) -> Key {
        let hex = self.0.to_hex();
        let path = format!("{BLOB_PREFIX}/{}/{}", &hex[..2], hex);
        // Hex digits are always valid segment characters.
        Key::parse(&path).unwrap_or_else(|e| unreachable!("a blob key is always valid: {e}"))
    }
}

/// Whether `key` names a content-addressed blob (`blobs/<2 hex>/<64 hex>`, the two digits
/// starting the 64): its content is determined by its name, so writing it twice is harmless.
pub(super) fn is_blob_key(key: &Key) -> bool {
    let mut segments = key.segments();
    let (Some(prefix), Some(fan), Some(name), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return false;
    };
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    prefix == BLOB_PREFIX
        && name.len() == 64
        && hex(name)
        && name.starts_with(fan)
        && fan.len() == 2
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", self.0.to_hex())
    }
}

impl FromStr for BlobHash {
    type Err = ParseBlobHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        blake3::Hash::from_hex(s)
            .map(BlobHash)
            .map_err(|_| ParseBlobHashError {
                input: s.chars().take(80).collect(),
            })
    }
}

impl Serialize for BlobHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_hex())
    }
}

impl<'de> Deserialize<'de> for BlobHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a blob hash (64 hex digits)")]
pub struct ParseBlobHashError {
    input: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_text_roundtrip() {
        let hash = BlobHash::of(b"abc");
        let text = hash.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<BlobHash>().unwrap(), hash);
        assert_eq!(
            hash.key().as_str(),
            format!("blobs/{}/{}", &text[..2], text)
        );
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(serde_json::from_str::<BlobHash>(&json).unwrap(), hash);
        assert!("xyz".parse::<BlobHash>().is_err());
    }

    #[test]
    fn content_addressed_keys() {
        let hash = BlobHash::of(b"x");
        assert!(is_blob_key(&hash.key()));
        assert_eq!(BlobHash::of_key(&hash.key()), Some(hash));
        let aside = Key::parse(&format!("{}.aside", hash.key())).unwrap();
        assert_eq!(BlobHash::of_key(&aside), None);
        assert_eq!(BlobHash::of_key(&BlobHash::prefix()), None);
        let hex = hash.to_string();
        let wrong_fan = if hex.starts_with("00") { "01" } else { "00" };
        for other in [
            format!("blobs/{hex}"),
            format!("blobs/{wrong_fan}/{hex}"),
            format!("blobs/{}/{}", &hex[..2], &hex[..63]),
            format!("other/{}/{hex}", &hex[..2]),
            format!("blobs/{}/{hex}/x", &hex[..2]),
            "flows/F/runs/1/run.json".to_owned(),
        ] {
            assert!(!is_blob_key(&Key::parse(&other).unwrap()), "{other}");
        }
    }
}
