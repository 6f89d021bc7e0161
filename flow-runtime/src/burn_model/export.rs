//! A stored [`Model`](super::Model) as plain tensors, read without the flow's Rust types, and
//! written as a `.safetensors` file: what `MYFLOW export-model` does.
//!
//! A model artifact holds burn's "burnpack" record (a header, CBOR metadata naming each tensor's
//! path, dtype, shape and byte range, then the raw little-endian data) beside the module's config
//! as JSON. `burn-pack` reads the container without knowing the module, so any model of any flow
//! exports the same way: every tensor under its record path (`l1.weight`), with its dtype, shape
//! and bytes unchanged. The safetensors file is what PyTorch (`safetensors.torch.load_file`),
//! numpy (`safetensors.numpy.load_file`) and burn (`burn::store::SafetensorsStore`) load.
//!
//! The tensors keep burn's layout: a `Linear` weight is `[in, out]`, where PyTorch's
//! `nn.Linear` holds `[out, in]`; a PyTorch user transposes it (burn's own
//! `PyTorchToBurnAdapter` does the same the other way).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use burn_pack::{Bytes, DType};
use safetensors::{Dtype, tensor::TensorView};
use serde::Deserialize;

use super::RECORD_FORMAT;

/// The `safetensors` crate this module writes with, re-exported to read the files back (its
/// `SafeTensors::deserialize`) without naming it in another `Cargo.toml`.
pub use safetensors;

/// Why a stored value could not be exported as a safetensors file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The value is not the stored form of a [`Model`](super::Model).
    #[error(
        "it is not a burn model (the stored form of a `Model<…>` field: burn_version, format, \
         module, config, record): {reason}"
    )]
    NotAModel {
        /// What did not fit.
        reason: String,
    },
    /// The value is nil: an unset model (the step that wrote it never assigned it), or an unset
    /// optional value of another type.
    #[error("it holds nothing (nil): an unset model, or not a model at all")]
    Unset,
    /// The record is in a container this build does not read.
    #[error(
        "its record is stored as `{found}`, which this build cannot read (it reads `{expected}`)"
    )]
    Format {
        /// The stored format name.
        found: String,
        /// The format this build reads.
        expected: &'static str,
    },
    /// The record bytes do not read as a burnpack container (damaged or truncated).
    #[error("its record ({len} bytes) is corrupt: {message}")]
    Corrupt {
        /// The size of the record bytes.
        len: usize,
        /// burn-pack's description of the problem.
        message: String,
    },
    /// A tensor's type has no safetensors equivalent (a quantized tensor, say).
    #[error("tensor `{tensor}` is of type {dtype}, which safetensors cannot hold")]
    UnsupportedDtype {
        /// The tensor's record path.
        tensor: String,
        /// burn's name of its type.
        dtype: String,
    },
    /// A tensor's bytes do not match its declared type and shape.
    #[error("tensor `{tensor}` cannot be written: {message}")]
    BadTensor {
        /// The tensor's record path.
        tensor: String,
        /// What is wrong.
        message: String,
    },
    /// The output could not be written; nothing was left at its path.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file that could not be written.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The stored form of a [`Model`](super::Model), as written by its `Serialize` impl.
#[derive(Deserialize)]
#[serde(expecting = "a map")]
struct StoredForm {
    burn_version: String,
    format: String,
    module: String,
    config: String,
    record: serde_bytes::ByteBuf,
}

/// One tensor of a stored model.
#[derive(Debug)]
pub struct WeightTensor {
    /// Its record path, e.g. `l1.weight`.
    pub name: String,
    /// Its element type, as safetensors names it.
    pub dtype: Dtype,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its raw little-endian values, row-major: a view of the record, not a copy.
    pub data: Bytes,
}

/// A stored model, decoded without its Rust types.
#[derive(Debug)]
pub struct StoredWeights {
    /// The burn version that wrote the record.
    pub burn_version: String,
    /// The module's Rust type when it was stored (informative).
    pub module: String,
    /// The module's config, as JSON text.
    pub config: String,
    /// Every tensor of the record, in the order of their names.
    pub tensors: Vec<WeightTensor>,
}

/// Where [`StoredWeights::write`] put its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedFiles {
    /// The safetensors file.
    pub tensors: PathBuf,
    /// The config beside it ([`config_path`]).
    pub config: PathBuf,
}

impl StoredWeights {
    /// Decodes the stored MessagePack bytes of a model artifact (an `Option` of the stored form:
    /// nil while unset).
    ///
    /// # Errors
    ///
    /// [`ExportError::NotAModel`], [`ExportError::Unset`], [`ExportError::Format`],
    /// [`ExportError::Corrupt`], or [`ExportError::UnsupportedDtype`].
    pub fn from_artifact(bytes: &[u8]) -> Result<Self, ExportError> {
        let stored: Option<StoredForm> =
            crate::state::decode_field(bytes).map_err(|e| ExportError::NotAModel {
                reason: e.to_string(),
            })?;
        let stored = stored.ok_or(ExportError::Unset)?;
        if stored.format != RECORD_FORMAT {
            return Err(ExportError::Format {
                found: stored.format,
                expected: RECORD_FORMAT,
            });
        }
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&stored.config) {
            return Err(ExportError::NotAModel {
                reason: format!("its config is not JSON: {e}"),
            });
        }
        let record = stored.record.into_vec();
        let len = record.len();
        let corrupt = |e: burn_pack::Error| ExportError::Corrupt {
            len,
            message: e.to_string(),
        };
        let pack = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(record)).map_err(corrupt)?;
        let mut tensors = Vec::new();
        for tensor in pack.into_tensors().map_err(corrupt)? {
            let (name, dtype, shape, _param_id, data) = tensor.into_parts().map_err(corrupt)?;
            let dtype = safetensors_dtype(dtype).ok_or_else(|| ExportError::UnsupportedDtype {
                tensor: name.clone(),
                dtype: format!("{dtype:?}"),
            })?;
            tensors.push(WeightTensor {
                name,
                dtype,
                shape: shape.to_vec(),
                data,
            });
        }
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(StoredWeights {
            burn_version: stored.burn_version,
            module: stored.module,
            config: stored.config,
            tensors,
        })
    }

    /// Writes the tensors to `output` as a safetensors file, and the config beside it at
    /// [`config_path`]`(output)`.
    ///
    /// The file's metadata (`__metadata__`) holds the config too (`config`), with `module`,
    /// `burn_version`, `producer` and whatever `metadata` adds, so the file alone is complete.
    /// Both files are written whole in a scratch directory beside `output`, then renamed into
    /// place (the config first): no reader ever sees a partial file, and a failure before the
    /// renames leaves whatever was at either path as it was and no scratch file behind.
    ///
    /// # Errors
    ///
    /// [`ExportError::BadTensor`] if a tensor's bytes do not fit its type and shape,
    /// [`ExportError::Write`] if a file cannot be written.
    pub fn write(
        &self,
        output: &Path,
        metadata: &[(&str, String)],
    ) -> Result<ExportedFiles, ExportError> {
        let config_file = config_path(output);
        let write_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source: io::Error| ExportError::Write { path, source }
        };
        // Refused before anything is written: a rename onto a directory would fail only after
        // the config was in place.
        for path in [output, config_file.as_path()] {
            if path.is_dir() {
                return Err(ExportError::Write {
                    path: path.to_path_buf(),
                    source: io::Error::new(io::ErrorKind::IsADirectory, "it is a directory"),
                });
            }
        }
        let parent = match output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let scratch = tempfile::Builder::new()
            .prefix(".export-model-")
            .tempdir_in(parent)
            .map_err(write_error(output))?;
        let scratch_tensors = scratch.path().join("model.safetensors");
        let scratch_config = scratch.path().join("model.config.json");

        let mut views = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            let view = TensorView::new(t.dtype, t.shape.clone(), &t.data).map_err(|e| {
                ExportError::BadTensor {
                    tensor: t.name.clone(),
                    message: e.to_string(),
                }
            })?;
            views.push((t.name.as_str(), view));
        }
        let mut info: HashMap<String, String> = HashMap::new();
        info.insert("producer".to_owned(), "blooming-flowers".to_owned());
        info.insert("module".to_owned(), self.module.clone());
        info.insert("burn_version".to_owned(), self.burn_version.clone());
        info.insert("config".to_owned(), self.config.clone());
        for (key, value) in metadata {
            info.insert((*key).to_owned(), value.clone());
        }
        safetensors::serialize_to_file(views, Some(info), &scratch_tensors).map_err(|e| {
            ExportError::Write {
                path: output.to_path_buf(),
                source: match e {
                    safetensors::SafeTensorError::IoError(io) => io,
                    other => io::Error::other(other.to_string()),
                },
            }
        })?;
        sort_metadata(&scratch_tensors).map_err(write_error(output))?;
        let mut config_text = pretty_json(&self.config);
        config_text.push('\n');
        fs::write(&scratch_config, config_text).map_err(write_error(&config_file))?;
        // The scratch file of `serialize_to_file` is private (0600); the export gets the
        // permissions any new file gets here (the umask's), as the config just did.
        let permissions = fs::metadata(&scratch_config)
            .map_err(write_error(&config_file))?
            .permissions();
        fs::set_permissions(&scratch_tensors, permissions).map_err(write_error(output))?;

        // The config goes first: a safetensors file at `output` is the sign that both are there.
        fs::rename(&scratch_config, &config_file).map_err(write_error(&config_file))?;
        fs::rename(&scratch_tensors, output).map_err(write_error(output))?;
        Ok(ExportedFiles {
            tensors: output.to_path_buf(),
            config: config_file,
        })
    }

    /// How many values all tensors hold together.
    pub fn parameter_count(&self) -> usize {
        self.tensors
            .iter()
            .map(|t| t.shape.iter().product::<usize>())
            .sum()
    }
}

/// Where the config of a model exported to `output` goes: `model.safetensors` →
/// `model.config.json`.
pub fn config_path(output: &Path) -> PathBuf {
    output.with_extension("config.json")
}

/// The safetensors type of burn's `dtype`, if there is one.
///
/// burn's `Flex32` is an `f32` in memory (a backend may compute with less precision), so its
/// bytes are `F32`; booleans stored as bytes are safetensors' one-byte `BOOL`.
fn safetensors_dtype(dtype: DType) -> Option<Dtype> {
    use burn::tensor::BoolStore;
    Some(match dtype {
        DType::F64 => Dtype::F64,
        DType::F32 | DType::Flex32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::I64 => Dtype::I64,
        DType::I32 => Dtype::I32,
        DType::I16 => Dtype::I16,
        DType::I8 => Dtype::I8,
        DType::U64 => Dtype::U64,
        DType::U32 => Dtype::U32,
        DType::U16 => Dtype::U16,
        DType::U8 => Dtype::U8,
        DType::Bool(BoolStore::Native | BoolStore::U8) => Dtype::BOOL,
        DType::Bool(BoolStore::U32) | DType::QFloat(_) => return None,
    })
}

/// Rewrites the header of the safetensors file at `path` with its `__metadata__` sorted by key.
///
/// The `safetensors` crate takes the metadata as a `HashMap` and writes it in that map's order,
/// which differs from process to process: the same model would export to different bytes. The
/// same entries in another order are the same compact JSON length, so the header is rewritten in
/// place, padded with spaces as the crate pads it; the tensor data is not touched.
fn sort_metadata(path: &Path) -> io::Result<()> {
    let invalid = |e: serde_json::Error| io::Error::new(io::ErrorKind::InvalidData, e);
    let mut file = fs::OpenOptions::new().read(true).write(true).open(path)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)?;
    let len = usize::try_from(u64::from_le_bytes(len)).map_err(io::Error::other)?;
    let mut header = vec![0u8; len];
    file.read_exact(&mut header)?;
    let mut entries: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(invalid)?;
    if let Some(metadata) = entries.get_mut("__metadata__") {
        let sorted: BTreeMap<String, String> =
            serde_json::from_value(metadata.take()).map_err(invalid)?;
        *metadata = serde_json::to_value(sorted).map_err(invalid)?;
    }
    let mut sorted = serde_json::to_vec(&entries).map_err(invalid)?;
    if sorted.len() > len {
        return Err(io::Error::other(format!(
            "the sorted header ({} bytes) is longer than the one written ({len} bytes)",
            sorted.len()
        )));
    }
    sorted.resize(len, b' ');
    file.seek(SeekFrom::Start(8))?;
    file.write_all(&sorted)?;
    file.flush()
}

/// The config indented for people, or as stored if it does not re-encode.
fn pretty_json(config: &str) -> String {
    serde_json::from_str::<serde_json::Value>(config)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| config.to_owned())
}
