//! burn models and optimizer state as fields of a flow struct (cargo feature `burn`).
//!
//! A flow persists every field with serde after every step, but a burn module is not `Serialize`:
//! its weights live in tensors on a device, and burn 0.22 saves them as a `ModuleRecord` (the
//! "burnpack" container), not through serde. [`Model`] bridges the two. It holds a module and the
//! config that builds it, and its serde form is
//!
//! ```text
//! { burn_version: "0.22.1", format: "burnpack", module: "<type name>",
//!   config: "<the config as JSON>", record: <burnpack bytes as a MessagePack bin> }
//! ```
//!
//! (or nil while the model is unset), so the flow struct's own `#[derive(Serialize, Deserialize)]`
//! just works. Reading it back builds the module from its config and loads the record into it:
//! the weights are bit-identical to the ones stored, in any process.
//!
//! Three properties make it fit the datastore:
//!
//! - **Canonical bytes.** burn gives every parameter a random [`ParamId`] and writes it into the
//!   record, so two identical models would encode differently and content addressing would store
//!   each copy. [`Model`] sets every id from a hash of the parameter's path before encoding, so
//!   equal weights give equal bytes and a model that did not change between steps costs nothing.
//! - **A stated burn version.** A burnpack record does not say which burn wrote it. The version is
//!   stored beside it and a record from another version is refused with an error naming both,
//!   instead of failing somewhere inside burn or, worse, loading something subtly different.
//! - **A device on load.** Deserializing must put tensors somewhere: [`Device::default()`] (burn's
//!   first enabled backend; with only this feature, the pure-Rust `flex` CPU backend), or the
//!   device given to [`with_load_device`] for the duration of a closure.
//!
//! [`OptimizerState`] stores an optimizer's state the same way, so training can continue in a
//! later run from where an earlier one stopped.
//!
//! ```
//! # use flow_runtime as blooming_flowers;
//! use blooming_flowers::burn_model::{ConfiguredModule, Model, burn};
//! use serde::{Deserialize, Serialize};
//! use burn::config::Config;
//! use burn::module::Module;
//! use burn::nn::{Linear, LinearConfig};
//! use burn::tensor::Device;
//!
//! #[derive(Config, Debug)]
//! pub struct TinyConfig {
//!     #[config(default = 3)]
//!     pub width: usize,
//! }
//!
//! #[derive(Module, Debug)]
//! pub struct Tiny {
//!     layer: Linear,
//! }
//!
//! impl ConfiguredModule for Tiny {
//!     type Config = TinyConfig;
//!     fn from_config(config: &TinyConfig, device: &Device) -> Self {
//!         Tiny { layer: LinearConfig::new(config.width, 1).init(device) }
//!     }
//! }
//!
//! // A flow struct holds it like any other field.
//! #[derive(Clone, Default, Serialize, Deserialize)]
//! struct Training {
//!     model: Model<Tiny>,
//! }
//!
//! let mut state = Training::default();
//! assert!(state.model.module().is_err(), "unset until a step sets it");
//! state.model = Model::init_seeded(TinyConfig::new(), &Device::default(), 7);
//! assert_eq!(state.model.module().unwrap().layer.weight.dims(), [3, 1]);
//! ```

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The burn crate this integration is built against, re-exported so that a flow's crate uses the
/// same version (and the same enabled backends) without naming it in its own `Cargo.toml`.
///
/// burn's derives expand to paths starting with `burn::`; bring the name into scope with
/// `use blooming_flowers::burn;` (or `blooming_flowers::burn_model::burn`, the same crate) in the
/// module that derives `Module` or `Config`.
pub use burn;

use burn::config::Config;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::store::{ModuleRecord, RecordError};
use burn::tensor::{Bool, Bytes, Device, Int, Tensor, TensorData};

/// The burn version whose records this build writes and reads.
///
/// burn is pinned to exactly this version in `flow-runtime/Cargo.toml` (a test checks that the two
/// agree): records carry no version of their own, and burn's API and formats change between minor
/// versions.
pub const BURN_VERSION: &str = "0.22.1";

/// The name of the record container, stored beside the bytes so that a later version can switch
/// to another container and still recognise the old one.
pub const RECORD_FORMAT: &str = "burnpack";

/// A burn module that can be rebuilt from its config.
///
/// What [`Model`] needs to turn stored bytes back into a module: the record holds only the
/// weights, so loading first builds a module of the right shape from the stored config, then loads
/// the weights into it. Typically a one-line forward to the config's own `init`:
///
/// ```
/// # use flow_runtime as blooming_flowers;
/// # use blooming_flowers::burn_model::{burn, ConfiguredModule, Model, OptimizerState};
/// # use burn::{config::Config, module::Module, nn::{Linear, LinearConfig}, tensor::Device};
/// # #[derive(Config, Debug)] pub struct MlpConfig { pub width: usize }
/// # #[derive(Module, Debug)] pub struct Mlp { layer: Linear }
/// # impl MlpConfig {
/// #     fn init(&self, device: &Device) -> Mlp { Mlp { layer: LinearConfig::new(self.width, 1).init(device) } }
/// # }
/// impl ConfiguredModule for Mlp {
///     type Config = MlpConfig;
///     fn from_config(config: &MlpConfig, device: &Device) -> Self {
///         config.init(device)
///     }
/// }
/// ```
///
/// `from_config` may draw random initial weights; when loading they are overwritten by the record
/// before anything reads them (burn initializes parameters lazily), so loading costs no random
/// numbers.
pub trait ConfiguredModule: Module + Sync + 'static {
    /// The config this module is built from; stored as JSON beside the weights.
    type Config: Config + Clone + Send + Sync + 'static;

    /// Builds a module of this config's shape on `device`.
    fn from_config(config: &Self::Config, device: &Device) -> Self;
}

/// Why a model or an optimizer state could not be used, stored or loaded.
///
/// Loading errors reach the client API as the message of its decode error, which also names the
/// artifact and the type that was asked for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The field was never set: it still holds its `Default`.
    #[error(
        "{what} is not set: a step must assign it (e.g. `Model::new(config, module)`) before it is used"
    )]
    Unset {
        /// What was unset, e.g. "model `my_crate::Mlp`".
        what: String,
    },
    /// The stored record was written by another burn version.
    #[error(
        "{what} was stored by burn {found}, but this build uses burn {expected}: burn records are \
         read only by the burn version that wrote them; load it from a build on burn {found}, or \
         train it again"
    )]
    BurnVersion {
        /// What was being loaded.
        what: String,
        /// The version stored with the record.
        found: String,
        /// This build's version ([`BURN_VERSION`]).
        expected: &'static str,
    },
    /// The stored record is in a container this build does not know.
    #[error("{what} is stored as `{found}`, which this build cannot read (it reads `{expected}`)")]
    Format {
        /// What was being loaded.
        what: String,
        /// The stored format name.
        found: String,
        /// This build's format ([`RECORD_FORMAT`]).
        expected: &'static str,
    },
    /// The stored config does not parse as the module's config type.
    #[error("the config of {what} cannot be read as `{config_type}`: {source}")]
    Config {
        /// What was being loaded.
        what: String,
        /// The config type that was expected.
        config_type: &'static str,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The record bytes are not a readable burnpack record (damaged or truncated).
    #[error("the record of {what} ({len} bytes) is corrupt: {message}")]
    Corrupt {
        /// What was being loaded.
        what: String,
        /// The size of the record bytes.
        len: usize,
        /// burn's description of the problem.
        message: String,
    },
    /// The record is readable but does not fit the module its config builds (a parameter was
    /// renamed, added, removed or reshaped since it was stored).
    #[error("the record of {what} does not fit the module its config builds: {source}")]
    Mismatch {
        /// What was being loaded.
        what: String,
        /// burn's validation error, which names the parameters.
        #[source]
        source: RecordError,
    },
    /// burn failed to encode a record.
    #[error("{what} cannot be encoded: {message}")]
    Encode {
        /// What was being stored.
        what: String,
        /// burn's description of the problem.
        message: String,
    },
}

// ---------------------------------------------------------------------------------------------
// The device used when deserializing.

thread_local! {
    static LOAD_DEVICE: RefCell<Option<Device>> = const { RefCell::new(None) };
}

/// Runs `f` with `device` as the device that models deserialized on this thread are built on.
///
/// Deserialization has no argument to pass a device through, so the client API (or a test)
/// chooses it around the call:
///
/// ```no_run
/// # use flow_runtime as blooming_flowers;
/// # use blooming_flowers::burn_model::{burn, ConfiguredModule, Model, OptimizerState};
/// # use burn::{config::Config, module::Module, nn::{Linear, LinearConfig}, tensor::Device};
/// # #[derive(Config, Debug)] pub struct MlpConfig { pub width: usize }
/// # #[derive(Module, Debug)] pub struct Mlp { layer: Linear }
/// # impl MlpConfig {
/// #     fn init(&self, device: &Device) -> Mlp { Mlp { layer: LinearConfig::new(self.width, 1).init(device) } }
/// # }
/// # impl ConfiguredModule for Mlp {
/// #     type Config = MlpConfig;
/// #     fn from_config(config: &MlpConfig, device: &Device) -> Self { config.init(device) }
/// # }
/// # use blooming_flowers::burn_model::with_load_device;
/// # fn load(run: &blooming_flowers::client::RunHandle, gpu: &Device)
/// #     -> Result<(), blooming_flowers::client::ClientError> {
/// let model: Model<Mlp> = with_load_device(gpu, || run.artifact("best"))?;
/// # Ok(()) }
/// ```
///
/// Nested calls restore the outer device when they return (or unwind).
pub fn with_load_device<R>(device: &Device, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Device>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            LOAD_DEVICE.with(|slot| *slot.borrow_mut() = previous);
        }
    }
    let previous = LOAD_DEVICE.with(|slot| slot.borrow_mut().replace(device.clone()));
    let _restore = Restore(previous);
    f()
}

/// The device a model deserialized on this thread is built on now: the innermost
/// [`with_load_device`], else [`Device::default()`].
pub fn load_device() -> Device {
    LOAD_DEVICE
        .with(|slot| slot.borrow().clone())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Model.

/// A burn module and its config, as a field of a flow struct.
///
/// `Default` is the unset model (flow structs start from `Default`); accessors return
/// [`ModelError::Unset`] until a step assigns one. `Clone` is cheap: burn tensors are shared until
/// written.
///
/// The parameter ids of the held module are canonical (derived from each parameter's path, see
/// the [module docs](self)), so an optimizer trained on [`Model::module`] keys its state by ids
/// that survive storing and loading; [`OptimizerState`] relies on that.
///
/// Store modules on a plain device (`module.valid()` after training on an autodiff device): the
/// record is the same either way, but a held autodiff module keeps its graph alive until the
/// model is dropped.
pub struct Model<M: ConfiguredModule> {
    inner: Option<Inner<M>>,
}

struct Inner<M: ConfiguredModule> {
    config: M::Config,
    module: M,
    /// The canonical record bytes, once computed (or as read): steps after the one that set the
    /// model re-store it without encoding it again.
    record: OnceLock<Arc<[u8]>>,
}

impl<M: ConfiguredModule> Clone for Inner<M> {
    fn clone(&self) -> Self {
        Inner {
            config: self.config.clone(),
            module: self.module.clone(),
            record: self.record.clone(),
        }
    }
}

impl<M: ConfiguredModule> Clone for Model<M> {
    fn clone(&self) -> Self {
        Model {
            inner: self.inner.clone(),
        }
    }
}

impl<M: ConfiguredModule> Default for Model<M> {
    fn default() -> Self {
        Model { inner: None }
    }
}

impl<M: ConfiguredModule> fmt::Debug for Model<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = format!("Model<{}>", std::any::type_name::<M>());
        match &self.inner {
            None => write!(f, "{name}(unset)"),
            Some(inner) => f
                .debug_struct(&name)
                .field("config", &inner.config)
                .field("num_params", &inner.module.num_params())
                .finish(),
        }
    }
}

/// Serializes all seeded initializations of this process: burn's seed is global to a backend, so
/// two threads seeding and drawing at once would interleave their random numbers.
static SEED_LOCK: Mutex<()> = Mutex::new(());

impl<M: ConfiguredModule> Model<M> {
    /// A model holding `module`, built from `config`.
    ///
    /// `config` must be the one that builds a module of `module`'s shape: it is what loading
    /// uses to rebuild it. The module's parameter ids are replaced by canonical ones.
    pub fn new(config: M::Config, module: M) -> Self {
        Model {
            inner: Some(Inner {
                config,
                module: canonical_ids(module),
                record: OnceLock::new(),
            }),
        }
    }

    /// A fresh module built from `config` on `device`, every parameter initialized now.
    ///
    /// burn draws initial weights lazily, on a parameter's first use, so the order in which code
    /// touches parameters would decide which random numbers each gets. Initializing all of them
    /// here, in the module's own order, makes the weights depend on the seed only.
    pub fn init(config: M::Config, device: &Device) -> Self {
        let module = initialize_all(M::from_config(&config, device));
        Self::new(config, module)
    }

    /// Like [`Model::init`], with `device`'s random generator seeded with `seed` first: the same
    /// seed gives the same weights, in any process.
    ///
    /// burn's seed is global to the backend. Seeded initializations through this function never
    /// interleave with each other, but a random draw elsewhere in the process at the same time
    /// (another thread creating random tensors) can still shift the numbers.
    pub fn init_seeded(config: M::Config, device: &Device, seed: u64) -> Self {
        let _guard = SEED_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        device.seed(seed);
        Self::init(config, device)
    }

    /// Whether a model was assigned (`false` for the `Default` value).
    pub fn is_set(&self) -> bool {
        self.inner.is_some()
    }

    /// The config the module is built from.
    ///
    /// # Errors
    ///
    /// [`ModelError::Unset`] if no model was assigned.
    pub fn config(&self) -> Result<&M::Config, ModelError> {
        Ok(&self.inner()?.config)
    }

    /// The module, e.g. to run it (`model.module()?.forward(x)`) or to clone it for training.
    ///
    /// # Errors
    ///
    /// [`ModelError::Unset`] if no model was assigned.
    pub fn module(&self) -> Result<&M, ModelError> {
        Ok(&self.inner()?.module)
    }

    /// The module, taken out of the model.
    ///
    /// # Errors
    ///
    /// [`ModelError::Unset`] if no model was assigned.
    pub fn into_module(self) -> Result<M, ModelError> {
        self.into_parts().map(|(_, module)| module)
    }

    /// The config and the module, taken out of the model.
    ///
    /// # Errors
    ///
    /// [`ModelError::Unset`] if no model was assigned.
    pub fn into_parts(self) -> Result<(M::Config, M), ModelError> {
        match self.inner {
            Some(inner) => Ok((inner.config, inner.module)),
            None => Err(Self::unset()),
        }
    }

    /// Replaces the module (e.g. with its trained version), keeping the config, and returns the
    /// previous one.
    ///
    /// # Errors
    ///
    /// [`ModelError::Unset`] if no model was assigned: there is no config to keep.
    pub fn replace_module(&mut self, module: M) -> Result<M, ModelError> {
        let inner = self.inner.as_mut().ok_or_else(Self::unset)?;
        inner.record = OnceLock::new();
        Ok(std::mem::replace(&mut inner.module, canonical_ids(module)))
    }

    /// The record as stored: canonical burnpack bytes of the module's weights.
    ///
    /// Computed once and kept until the module is replaced.
    ///
    /// # Errors
    ///
    /// [`ModelError::Unset`], or [`ModelError::Encode`] if burn fails to encode the record.
    pub fn record_bytes(&self) -> Result<Arc<[u8]>, ModelError> {
        let inner = self.inner()?;
        if let Some(bytes) = inner.record.get() {
            return Ok(bytes.clone());
        }
        let bytes: Arc<[u8]> = encode_module(&inner.module, &Self::what())?.into();
        Ok(inner.record.get_or_init(|| bytes).clone())
    }

    /// A checksum of the weights alone: a BLAKE3 hash (hex) over every parameter's path, type,
    /// shape and raw little-endian values, in the module's order.
    ///
    /// Computed from the tensors every time, never from the stored bytes, so comparing the
    /// checksum recorded when a model was trained with the checksum of the model loaded later
    /// proves the weights came back bit for bit.
    ///
    /// # Errors
    ///
    /// [`ModelError::Unset`] if no model was assigned.
    pub fn weights_checksum(&self) -> Result<String, ModelError> {
        Ok(weights_checksum(self.module()?))
    }

    fn inner(&self) -> Result<&Inner<M>, ModelError> {
        self.inner.as_ref().ok_or_else(Self::unset)
    }

    fn what() -> String {
        format!("model `{}`", std::any::type_name::<M>())
    }

    fn unset() -> ModelError {
        ModelError::Unset { what: Self::what() }
    }

    /// Rebuilds a model from its stored form on `device`, checking everything that can be
    /// checked before burn sees the bytes.
    fn from_stored(stored: StoredModel, device: &Device) -> Result<Self, ModelError> {
        let what = Self::what();
        check_header(&what, &stored.burn_version, &stored.format)?;
        let config: M::Config =
            serde_json::from_str(&stored.config).map_err(|source| ModelError::Config {
                what: what.clone(),
                config_type: std::any::type_name::<M::Config>(),
                source,
            })?;
        let bytes = stored.record.into_vec();
        let len = bytes.len();
        let record =
            ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.clone())).map_err(|e| {
                ModelError::Corrupt {
                    what: what.clone(),
                    len,
                    message: record_error_message(&e),
                }
            })?;
        let module = M::from_config(&config, device)
            .try_load_record(record)
            .map_err(|source| match source {
                RecordError::Io(message) => ModelError::Corrupt {
                    what: what.clone(),
                    len,
                    message,
                },
                source @ RecordError::Validation(_) => ModelError::Mismatch {
                    what: what.clone(),
                    source,
                },
            })?;
        Ok(Model {
            inner: Some(Inner {
                config,
                module,
                record: OnceLock::from(Arc::<[u8]>::from(bytes)),
            }),
        })
    }
}

/// The stored form of a [`Model`], borrowed for writing.
#[derive(Serialize)]
struct StoredModelRef<'a> {
    burn_version: &'a str,
    format: &'a str,
    module: &'a str,
    config: &'a str,
    #[serde(with = "serde_bytes")]
    record: &'a [u8],
}

/// The stored form of a [`Model`], owned for reading.
#[derive(Deserialize)]
struct StoredModel {
    burn_version: String,
    format: String,
    /// The module's Rust type when stored; informative (for `dump`), never checked, so that
    /// moving or renaming the type keeps old runs readable.
    #[serde(default)]
    #[allow(dead_code)]
    module: String,
    config: String,
    record: serde_bytes::ByteBuf,
}

impl<M: ConfiguredModule> Serialize for Model<M> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some(inner) = &self.inner else {
            return serializer.serialize_none();
        };
        let record = self.record_bytes().map_err(S::Error::custom)?;
        let config = serde_json::to_string(&inner.config).map_err(|e| {
            S::Error::custom(format!(
                "the config of {} cannot be encoded: {e}",
                Self::what()
            ))
        })?;
        serializer.serialize_some(&StoredModelRef {
            burn_version: BURN_VERSION,
            format: RECORD_FORMAT,
            module: std::any::type_name::<M>(),
            config: &config,
            record: &record,
        })
    }
}

impl<'de, M: ConfiguredModule> Deserialize<'de> for Model<M> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Option::<StoredModel>::deserialize(deserializer)? {
            None => Ok(Model::default()),
            Some(stored) => Model::from_stored(stored, &load_device()).map_err(D::Error::custom),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Optimizer state.

/// An optimizer's state (e.g. Adam's moments), as a field of a flow struct, so that training can
/// continue in a later step or run exactly where it stopped.
///
/// Stored as burn's `OptimizerRecord` bytes beside the burn version, like [`Model`]. The state is
/// keyed by parameter id; the ids of a [`Model`]'s module are canonical, so the state captured
/// while training `model.module()` fits the same model after it is loaded elsewhere.
///
/// ```
/// # use flow_runtime as blooming_flowers;
/// # use blooming_flowers::burn_model::{burn, ConfiguredModule, Model, OptimizerState};
/// # use burn::{config::Config, module::Module, nn::{Linear, LinearConfig}, tensor::Device};
/// # #[derive(Config, Debug)] pub struct MlpConfig { pub width: usize }
/// # #[derive(Module, Debug)] pub struct Mlp { layer: Linear }
/// # impl MlpConfig {
/// #     fn init(&self, device: &Device) -> Mlp { Mlp { layer: LinearConfig::new(self.width, 1).init(device) } }
/// # }
/// # impl ConfiguredModule for Mlp {
/// #     type Config = MlpConfig;
/// #     fn from_config(config: &MlpConfig, device: &Device) -> Self { config.init(device) }
/// # }
/// # use burn::optim::AdamConfig;
/// # #[derive(Default)] struct State { optimizer: OptimizerState }
/// # fn main() -> Result<(), blooming_flowers::burn_model::ModelError> {
/// # let mut state = State::default();
/// let mut optim = state.optimizer.restore_or(AdamConfig::new().init())?; // fresh if unset
/// // … training steps: `model = optim.step(learning_rate, model, grads)` …
/// state.optimizer = OptimizerState::capture(&optim)?;
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct OptimizerState {
    record: Option<Arc<[u8]>>,
}

impl fmt::Debug for OptimizerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.record {
            None => f.write_str("OptimizerState(unset)"),
            Some(bytes) => write!(f, "OptimizerState({} bytes)", bytes.len()),
        }
    }
}

impl OptimizerState {
    const WHAT: &'static str = "optimizer state";

    /// Captures `optimizer`'s state.
    ///
    /// The bytes are canonical: burn writes the per-parameter entries in hash-map order, which
    /// this sorts, so the same state gives the same bytes.
    ///
    /// # Errors
    ///
    /// [`ModelError::Encode`] if burn fails to encode the record.
    pub fn capture(optimizer: &ModuleOptimizer) -> Result<Self, ModelError> {
        let encode_error = |message: String| ModelError::Encode {
            what: Self::WHAT.to_owned(),
            message,
        };
        let bytes = optimizer
            .to_record()
            .into_bytes()
            .map_err(|e| encode_error(record_error_message(&e)))?;
        let canonical = canonical_pack(bytes).map_err(|e| encode_error(e.to_string()))?;
        Ok(OptimizerState {
            record: Some(canonical.into()),
        })
    }

    /// Whether a state was captured (`false` for the `Default` value).
    pub fn is_set(&self) -> bool {
        self.record.is_some()
    }

    /// The stored record bytes, if set.
    pub fn record_bytes(&self) -> Option<&[u8]> {
        self.record.as_deref()
    }

    /// Loads the stored state into `optimizer`, which must be configured like the one it was
    /// captured from (same kind, same parameter groups).
    ///
    /// # Errors
    ///
    /// [`ModelError::Unset`] if nothing was captured; [`ModelError::Corrupt`] if the bytes do
    /// not read back.
    pub fn restore(&self, optimizer: ModuleOptimizer) -> Result<ModuleOptimizer, ModelError> {
        let bytes = self.record.as_deref().ok_or_else(|| ModelError::Unset {
            what: Self::WHAT.to_owned(),
        })?;
        Ok(optimizer.load_record(read_optimizer_record(bytes)?))
    }

    /// Like [`OptimizerState::restore`], but returns `optimizer` unchanged when nothing was
    /// captured: the first run of a training that later runs continue.
    ///
    /// # Errors
    ///
    /// [`ModelError::Corrupt`] if the stored bytes do not read back.
    pub fn restore_or(&self, optimizer: ModuleOptimizer) -> Result<ModuleOptimizer, ModelError> {
        if self.is_set() {
            self.restore(optimizer)
        } else {
            Ok(optimizer)
        }
    }
}

/// The stored form of an [`OptimizerState`], borrowed for writing.
#[derive(Serialize)]
struct StoredOptimizerRef<'a> {
    burn_version: &'a str,
    format: &'a str,
    #[serde(with = "serde_bytes")]
    record: &'a [u8],
}

/// The stored form of an [`OptimizerState`], owned for reading.
#[derive(Deserialize)]
struct StoredOptimizer {
    burn_version: String,
    format: String,
    record: serde_bytes::ByteBuf,
}

impl Serialize for OptimizerState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.record {
            None => serializer.serialize_none(),
            Some(record) => serializer.serialize_some(&StoredOptimizerRef {
                burn_version: BURN_VERSION,
                format: RECORD_FORMAT,
                record,
            }),
        }
    }
}

impl<'de> Deserialize<'de> for OptimizerState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Some(stored) = Option::<StoredOptimizer>::deserialize(deserializer)? else {
            return Ok(OptimizerState::default());
        };
        check_header(OptimizerState::WHAT, &stored.burn_version, &stored.format)
            .map_err(D::Error::custom)?;
        let bytes = stored.record.into_vec();
        // Read it now, so that damage is reported where the artifact is loaded, not at the
        // first training step of a later run.
        read_optimizer_record(&bytes).map_err(D::Error::custom)?;
        Ok(OptimizerState {
            record: Some(bytes.into()),
        })
    }
}

/// Reads optimizer record bytes, refusing what would make burn panic when loading them.
fn read_optimizer_record(bytes: &[u8]) -> Result<OptimizerRecord, ModelError> {
    let corrupt = |message: String| ModelError::Corrupt {
        what: OptimizerState::WHAT.to_owned(),
        len: bytes.len(),
        message,
    };
    // `ModuleOptimizer::load_record` panics on a tensor without a parameter id: check first.
    let reader = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| corrupt(e.to_string()))?;
    let tensors = reader.into_tensors().map_err(|e| corrupt(e.to_string()))?;
    if let Some(tensor) = tensors.iter().find(|t| t.param_id.is_none()) {
        return Err(corrupt(format!(
            "tensor `{}` names no parameter",
            tensor.name
        )));
    }
    OptimizerRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| corrupt(record_error_message(&e)))
}

/// Rewrites burnpack bytes with their tensors sorted by name, so the same content always gives
/// the same bytes whatever order the writer was handed the tensors in.
fn canonical_pack(bytes: Bytes) -> Result<Vec<u8>, burn_pack::Error> {
    let reader = burn_pack::Reader::from_bytes(bytes)?;
    let scalars = reader.scalars().clone();
    let metadata = reader.metadata().clone();
    let mut tensors = reader.into_tensors()?;
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let mut writer = burn_pack::Writer::new(tensors);
    for (key, value) in &scalars {
        writer = writer.with_scalar(key, *value);
    }
    for (key, value) in &metadata {
        writer = writer.with_metadata(key, value);
    }
    Ok(writer.into_bytes()?.to_vec())
}

// ---------------------------------------------------------------------------------------------
// Shared helpers.

/// Checks the version and format stored beside a record, before burn sees the bytes.
fn check_header(what: &str, burn_version: &str, format: &str) -> Result<(), ModelError> {
    if burn_version != BURN_VERSION {
        return Err(ModelError::BurnVersion {
            what: what.to_owned(),
            found: burn_version.to_owned(),
            expected: BURN_VERSION,
        });
    }
    if format != RECORD_FORMAT {
        return Err(ModelError::Format {
            what: what.to_owned(),
            found: format.to_owned(),
            expected: RECORD_FORMAT,
        });
    }
    Ok(())
}

/// burn's message without its own "Record I/O error:" prefix, which our errors replace.
fn record_error_message(error: &RecordError) -> String {
    match error {
        RecordError::Io(message) | RecordError::Validation(message) => message.clone(),
    }
}

/// The canonical burnpack bytes of `module`'s weights.
fn encode_module<M: Module>(module: &M, what: &str) -> Result<Vec<u8>, ModelError> {
    let bytes = canonical_ids(module.clone())
        .into_record()
        .into_bytes()
        .map_err(|e| ModelError::Encode {
            what: what.to_owned(),
            message: record_error_message(&e),
        })?;
    Ok(bytes.to_vec())
}

/// The id a parameter at `path` (e.g. `l1.weight`) gets: the first 8 bytes of a BLAKE3 hash.
///
/// A pure function of the path, so the same module structure always gets the same ids, in any
/// process; distinct paths get distinct ids with overwhelming probability.
pub fn canonical_param_id(path: &str) -> ParamId {
    let hash = blake3::Hasher::new()
        .update(b"blooming-flowers/burn-param-id/v1\0")
        .update(path.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    ParamId::from(u64::from_le_bytes(first))
}

/// Replaces every parameter id of `module` with [`canonical_param_id`] of its path.
///
/// What makes equal weights encode to equal bytes. [`Model`] applies it on construction; call it
/// directly to compare records of modules that are not in a [`Model`].
pub fn canonical_ids<M: Module>(module: M) -> M {
    module.map(&mut CanonicalIds::default())
}

#[derive(Default)]
struct CanonicalIds {
    path: Vec<String>,
}

impl CanonicalIds {
    fn id(&self) -> ParamId {
        canonical_param_id(&self.path.join("."))
    }
}

impl ModuleMapper for CanonicalIds {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.id = self.id();
        param
    }

    fn map_int<const D: usize>(
        &mut self,
        mut param: Param<Tensor<D, Int>>,
    ) -> Param<Tensor<D, Int>> {
        param.id = self.id();
        param
    }

    fn map_bool<const D: usize>(
        &mut self,
        mut param: Param<Tensor<D, Bool>>,
    ) -> Param<Tensor<D, Bool>> {
        param.id = self.id();
        param
    }
}

/// Initializes every lazily initialized parameter of `module`, in the module's traversal order.
fn initialize_all<M: Module>(module: M) -> M {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
        fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
            let _ = param.val();
        }
        fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<D, Bool>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
    module
}

/// See [`Model::weights_checksum`]; usable on any module.
pub fn weights_checksum<M: Module>(module: &M) -> String {
    struct Checksum {
        path: Vec<String>,
        hasher: blake3::Hasher,
    }
    impl Checksum {
        fn add(&mut self, data: TensorData) {
            let path = self.path.join(".");
            self.hasher.update(&(path.len() as u64).to_le_bytes());
            self.hasher.update(path.as_bytes());
            let dtype = format!("{:?}", data.dtype());
            self.hasher.update(&(dtype.len() as u64).to_le_bytes());
            self.hasher.update(dtype.as_bytes());
            let dims = data.shape().to_vec();
            self.hasher.update(&(dims.len() as u64).to_le_bytes());
            for dim in dims {
                self.hasher.update(&(dim as u64).to_le_bytes());
            }
            let bytes = data.as_bytes();
            self.hasher.update(&(bytes.len() as u64).to_le_bytes());
            self.hasher.update(bytes);
        }
    }
    impl ModuleVisitor for Checksum {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_owned());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.add(param.val().into_data());
        }
        fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
            self.add(param.val().into_data());
        }
        fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<D, Bool>>) {
            self.add(param.val().into_data());
        }
    }
    let mut checksum = Checksum {
        path: Vec::new(),
        hasher: blake3::Hasher::new(),
    };
    module.visit(&mut checksum);
    checksum.hasher.finalize().to_hex().to_string()
}

pub mod export;

#[cfg(test)]
mod tests;
