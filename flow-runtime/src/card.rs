//! Cards: a report a step writes while it runs, stored with its task.
//!
//! A [`Card`] is an ordered list of [`Component`]s: markdown text, tables, PNG images and
//! line or scatter charts of numeric series. A step appends to its task's card through a
//! [`CardWriter`], obtained from [`card()`](crate::current::card) or
//! [`Current::card`](crate::current::Current::card); the executor stores the card of every
//! attempt next to that attempt's log, before the task's done marker, and the client reads it
//! back with [`TaskHandle::card`](crate::client::TaskHandle::card). `blooming ui` shows it on the
//! task's page and `blooming card` exports it as one self-contained HTML file.
//!
//! ```
//! use flow_runtime::card::{Cell, Chart, Table};
//!
//! let losses = [0.9_f32, 0.5, 0.3, 0.2];
//! let card = flow_runtime::card(); // outside a task: a detached card, dropped at the end
//! card.markdown("# Training\nfour epochs of **SGD**")
//!     .chart(Chart::line("loss").x_label("epoch").y_label("loss").series("lr=0.01", losses))
//!     .table(Table::new(["lr", "final loss", "picked"]).row([Cell::from(0.01), 0.2.into(), true.into()]));
//! let snapshot = card.snapshot();
//! assert_eq!(snapshot.components.len(), 3);
//! ```
//!
//! # Limits
//!
//! A card's encoding is bounded by [`MAX_CARD_SIZE`] (16 MiB). A component that would take the
//! card past it is not added: the card counts it in [`Card::dropped`] (shown as a notice where
//! the card is shown) and a warning goes to the task's log. A full card never fails the task, and
//! the task's artifacts are stored as usual.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

/// The largest encoded card kept, in bytes: components that would take a card past it are
/// dropped (and counted in [`Card::dropped`]).
pub const MAX_CARD_SIZE: usize = crate::run::MAX_CARD_SIZE as usize;

/// The eight bytes every PNG file starts with.
pub const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// What can be wrong with a component.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CardError {
    /// Image bytes that do not start with the PNG signature: only PNG images are kept.
    #[error("the image is not a PNG: its bytes do not start with the PNG signature")]
    NotPng,
}

/// A task's report: its components in the order they were added.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Card {
    /// The components, in the order the step added them.
    pub components: Vec<Component>,
    /// How many components were not added because the card had reached [`MAX_CARD_SIZE`].
    #[serde(default)]
    pub dropped: u64,
}

impl Card {
    /// Whether the card has nothing to show (no component, none dropped).
    pub fn is_empty(&self) -> bool {
        self.components.is_empty() && self.dropped == 0
    }
}

/// One piece of a card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Component {
    /// Markdown text (CommonMark with tables). Raw HTML in it is shown as text, never run.
    Markdown(String),
    /// A table of cells.
    Table(Table),
    /// A PNG image.
    Image(Image),
    /// A line or scatter chart.
    Chart(Chart),
}

/// A table: named columns and rows of cells (a row may be shorter or longer than the header).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Table {
    /// The column headers.
    pub columns: Vec<String>,
    /// The rows, each a list of cells.
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table with these column headers and no rows.
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = S>) -> Table {
        Table {
            columns: columns.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row: `table.row([0.01.into(), "picked".into()])`, or `table.row([1, 2])` when all
    /// cells have one type.
    #[must_use]
    pub fn row<C: Into<Cell>>(mut self, cells: impl IntoIterator<Item = C>) -> Table {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }
}

/// One cell of a [`Table`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Cell {
    /// Text, shown as text.
    Text(String),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Text(s) => f.write_str(s),
            Cell::Int(i) => write!(f, "{i}"),
            Cell::Float(x) => write!(f, "{x}"),
            Cell::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_owned())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}

impl From<bool> for Cell {
    fn from(b: bool) -> Cell {
        Cell::Bool(b)
    }
}

impl From<f64> for Cell {
    fn from(x: f64) -> Cell {
        Cell::Float(x)
    }
}

impl From<f32> for Cell {
    fn from(x: f32) -> Cell {
        Cell::Float(f64::from(x))
    }
}

macro_rules! int_cells {
    ($($t:ty),*) => {$(
        impl From<$t> for Cell {
            fn from(i: $t) -> Cell {
                Cell::Int(i64::from(i))
            }
        }
    )*};
}
int_cells!(i8, i16, i32, i64, u8, u16, u32);

impl From<usize> for Cell {
    /// An integer cell; a `usize` beyond `i64::MAX` (never a length) becomes a float.
    fn from(i: usize) -> Cell {
        i64::try_from(i).map_or(Cell::Float(i as f64), Cell::Int)
    }
}

/// A PNG image and its caption.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// The PNG file's bytes.
    #[serde(with = "serde_bytes")]
    pub png: Vec<u8>,
    /// Shown under the image; may be empty.
    pub caption: String,
}

impl Image {
    /// An image from a PNG file's bytes, checked to start with the PNG signature.
    ///
    /// # Errors
    ///
    /// [`CardError::NotPng`] if the bytes are not a PNG (e.g. a JPEG or an SVG).
    pub fn png(bytes: impl Into<Vec<u8>>) -> Result<Image, CardError> {
        let png = bytes.into();
        if !png.starts_with(&PNG_SIGNATURE) {
            return Err(CardError::NotPng);
        }
        Ok(Image {
            png,
            caption: String::new(),
        })
    }

    /// An image of `width` × `height` pixels from their RGB bytes (row by row, three bytes a
    /// pixel), encoded as an uncompressed PNG: for small pictures (a confusion matrix, a
    /// heat map) drawn without an image crate. Missing bytes are black, extra bytes ignored.
    pub fn from_rgb(width: u32, height: u32, rgb: &[u8]) -> Image {
        Image {
            png: encode_rgb_png(width, height, rgb),
            caption: String::new(),
        }
    }

    /// Sets the caption.
    #[must_use]
    pub fn caption(mut self, caption: impl Into<String>) -> Image {
        self.caption = caption.into();
        self
    }
}

/// A PNG of RGB pixels, its image data stored without compression (deflate's stored blocks).
fn encode_rgb_png(width: u32, height: u32, rgb: &[u8]) -> Vec<u8> {
    let row = width as usize * 3;
    let mut raw = Vec::with_capacity((row + 1) * height as usize);
    for y in 0..height as usize {
        raw.push(0); // filter: none
        for i in 0..row {
            raw.push(rgb.get(y * row + i).copied().unwrap_or(0));
        }
    }
    // zlib: header, stored blocks of at most 65535 bytes, Adler-32.
    let mut zlib = vec![0x78, 0x01];
    let mut blocks = raw.chunks(0xffff).peekable();
    if blocks.peek().is_none() {
        zlib.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        zlib.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    let (mut a, mut b) = (1_u32, 0_u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());

    let mut png = PNG_SIGNATURE.to_vec();
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8 bits, RGB, deflate, no filter, no interlace
    for (kind, data) in [(b"IHDR", &header), (b"IDAT", &zlib), (b"IEND", &Vec::new())] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = png.len();
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        let crc = crc32(&png[start..]);
        png.extend_from_slice(&crc.to_be_bytes());
    }
    png
}

/// CRC-32 (ISO 3309), as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0_u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// How a chart draws its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChartKind {
    /// Points joined by lines, in the order of x.
    Line,
    /// Points alone.
    Scatter,
}

/// A chart of numeric series, e.g. a loss per epoch:
/// `Chart::line("loss").x_label("epoch").series("lr=0.01", losses)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    /// Line or scatter.
    pub kind: ChartKind,
    /// The chart's title.
    pub title: String,
    /// The label of the x axis; may be empty.
    pub x_label: String,
    /// The label of the y axis; may be empty.
    pub y_label: String,
    /// The series, each drawn in its own colour and named in the legend.
    pub series: Vec<Series>,
}

/// One named series of points of a [`Chart`]. Non-finite values are kept and shown as gaps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The name shown in the legend.
    pub name: String,
    /// The x of each point.
    pub x: Vec<f64>,
    /// The y of each point, as many as `x`.
    pub y: Vec<f64>,
}

impl Chart {
    /// A line chart with this title and no series.
    pub fn line(title: impl Into<String>) -> Chart {
        Chart::new(ChartKind::Line, title)
    }

    /// A scatter chart with this title and no series.
    pub fn scatter(title: impl Into<String>) -> Chart {
        Chart::new(ChartKind::Scatter, title)
    }

    fn new(kind: ChartKind, title: impl Into<String>) -> Chart {
        Chart {
            kind,
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            series: Vec::new(),
        }
    }

    /// Sets the label of the x axis.
    #[must_use]
    pub fn x_label(mut self, label: impl Into<String>) -> Chart {
        self.x_label = label.into();
        self
    }

    /// Sets the label of the y axis.
    #[must_use]
    pub fn y_label(mut self, label: impl Into<String>) -> Chart {
        self.y_label = label.into();
        self
    }

    /// Adds a series whose x are `0, 1, 2, …` (e.g. the epoch of each loss).
    #[must_use]
    pub fn series<V: Into<f64>>(
        self,
        name: impl Into<String>,
        y: impl IntoIterator<Item = V>,
    ) -> Chart {
        let y: Vec<f64> = y.into_iter().map(Into::into).collect();
        let x = (0..y.len()).map(|i| i as f64).collect();
        self.push_series(name.into(), x, y)
    }

    /// Adds a series of `(x, y)` points.
    #[must_use]
    pub fn points<X: Into<f64>, Y: Into<f64>>(
        self,
        name: impl Into<String>,
        points: impl IntoIterator<Item = (X, Y)>,
    ) -> Chart {
        let (x, y) = points
            .into_iter()
            .map(|(x, y)| (x.into(), y.into()))
            .unzip();
        self.push_series(name.into(), x, y)
    }

    fn push_series(mut self, name: String, x: Vec<f64>, y: Vec<f64>) -> Chart {
        self.series.push(Series { name, x, y });
        self
    }
}

/// The card being written by a task: a cheap handle (an `Arc`) that every clone of the task's
/// [`Current`](crate::current::Current) shares, so a step's threads append to one card.
///
/// Obtained from [`card()`](crate::current::card) or
/// [`Current::card`](crate::current::Current::card). Each method appends one component and
/// returns the writer, so calls chain. Appending encodes the component once to count its size
/// against [`MAX_CARD_SIZE`]; nothing is written to the datastore until the attempt ends.
#[derive(Clone, Default)]
pub struct CardWriter {
    buffer: Arc<Mutex<CardBuffer>>,
}

#[derive(Default)]
struct CardBuffer {
    card: Card,
    /// The encoded size of the components kept so far (an upper bound of the card's encoding).
    size: usize,
}

impl std::fmt::Debug for CardWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let buffer = self.lock();
        f.debug_struct("CardWriter")
            .field("components", &buffer.card.components.len())
            .field("size", &buffer.size)
            .field("dropped", &buffer.card.dropped)
            .finish()
    }
}

impl CardWriter {
    /// A card of its own, shared by nobody: what [`card()`](crate::current::card) returns
    /// outside a task. What is written to it is dropped with it.
    pub fn detached() -> CardWriter {
        CardWriter::default()
    }

    /// Appends a component, unless the card would exceed [`MAX_CARD_SIZE`]: then the component
    /// is counted in [`Card::dropped`] and a warning is logged (to the task's log).
    pub fn push(&self, component: Component) -> &CardWriter {
        // A component that cannot be encoded (never: these are plain data) counts as too large.
        let size = rmp_serde::to_vec(&component).map_or(usize::MAX, |b| b.len());
        let mut buffer = self.lock();
        // Room for the card's own framing (array and map headers, `dropped`).
        let framing = 32;
        if buffer.size.saturating_add(size).saturating_add(framing) > MAX_CARD_SIZE {
            buffer.card.dropped += 1;
            let dropped = buffer.card.dropped;
            drop(buffer);
            tracing::warn!(
                "the card is full ({} MiB): a component of {size} bytes was dropped ({dropped} so far)",
                MAX_CARD_SIZE >> 20
            );
        } else {
            buffer.size += size;
            buffer.card.components.push(component);
        }
        self
    }

    /// Appends markdown text. Raw HTML in it is shown as text.
    pub fn markdown(&self, text: impl Into<String>) -> &CardWriter {
        self.push(Component::Markdown(text.into()))
    }

    /// Appends a table.
    pub fn table(&self, table: Table) -> &CardWriter {
        self.push(Component::Table(table))
    }

    /// Appends an image (see [`Image::png`]).
    pub fn image(&self, image: Image) -> &CardWriter {
        self.push(Component::Image(image))
    }

    /// Appends a PNG image from its bytes, with a caption.
    ///
    /// # Errors
    ///
    /// [`CardError::NotPng`] if the bytes are not a PNG; nothing is appended then.
    pub fn png(
        &self,
        bytes: impl Into<Vec<u8>>,
        caption: impl Into<String>,
    ) -> Result<&CardWriter, CardError> {
        Ok(self.image(Image::png(bytes)?.caption(caption)))
    }

    /// Appends a chart.
    pub fn chart(&self, chart: Chart) -> &CardWriter {
        self.push(Component::Chart(chart))
    }

    /// A copy of the card as written so far.
    pub fn snapshot(&self) -> Card {
        self.lock().card.clone()
    }

    /// Moves the card out, leaving this writer's card empty; what the executor calls when an
    /// attempt ends.
    #[must_use = "the card is lost if not stored"]
    pub fn take(&self) -> Card {
        std::mem::take(&mut *self.lock()).card
    }

    /// Whether two writers append to the same card.
    pub fn same_card(&self, other: &CardWriter) -> bool {
        Arc::ptr_eq(&self.buffer, &other.buffer)
    }

    /// Locks the buffer. A panic while it is held leaves at worst one component unadded, so a
    /// poisoned lock is recovered.
    fn lock(&self) -> MutexGuard<'_, CardBuffer> {
        self.buffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Encodes a card as stored: MessagePack, as artifacts are.
///
/// # Errors
///
/// Only if serialization fails, which plain data does not.
pub fn encode(card: &Card) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec(card)
}

/// Decodes a stored card, checked first (`state::bounded`): stored bytes are untrusted.
///
/// # Errors
///
/// Bytes that are not the encoding of a card.
pub fn decode(bytes: &[u8]) -> Result<Card, rmp_serde::decode::Error> {
    crate::state::decode_field(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png() -> Vec<u8> {
        let mut bytes = PNG_SIGNATURE.to_vec();
        bytes.extend_from_slice(b"rest of the file");
        bytes
    }

    #[test]
    fn chart_builder_numbers_the_points() {
        let chart = Chart::line("loss")
            .x_label("epoch")
            .y_label("mse")
            .series("lr=0.1", [3.0_f32, 2.0, 1.5])
            .points("pts", [(1, 2.5), (4, 0.5)]);
        assert_eq!(chart.kind, ChartKind::Line);
        assert_eq!(chart.x_label, "epoch");
        assert_eq!(chart.series[0].x, vec![0.0, 1.0, 2.0]);
        assert_eq!(chart.series[0].y, vec![3.0, 2.0, 1.5]);
        assert_eq!(chart.series[1].x, vec![1.0, 4.0]);
        assert_eq!(chart.series[1].y, vec![2.5, 0.5]);
        assert_eq!(Chart::scatter("s").kind, ChartKind::Scatter);
    }

    #[test]
    fn table_rows_and_cells() {
        let table =
            Table::new(["a", "b"])
                .row([1, 2])
                .row([Cell::from("x"), 0.5.into(), true.into()]);
        assert_eq!(table.columns, vec!["a", "b"]);
        assert_eq!(table.rows[0], vec![Cell::Int(1), Cell::Int(2)]);
        assert_eq!(table.rows[1][2], Cell::Bool(true));
        assert_eq!(Cell::from(7_usize), Cell::Int(7));
        assert_eq!(Cell::Float(0.25).to_string(), "0.25");
    }

    #[test]
    fn only_png_images() {
        assert!(Image::png(png()).is_ok());
        assert_eq!(Image::png(b"GIF89a...".to_vec()), Err(CardError::NotPng));
        assert_eq!(Image::png(Vec::new()), Err(CardError::NotPng));
        let card = CardWriter::detached();
        assert!(card.png(b"<svg/>".to_vec(), "no").is_err());
        assert!(card.snapshot().is_empty());
        assert!(card.png(png(), "yes").is_ok());
        assert_eq!(card.snapshot().components.len(), 1);
    }

    #[test]
    fn rgb_pictures_are_pngs() {
        let image = Image::from_rgb(2, 1, &[255, 0, 0, 0, 0, 255]);
        assert!(image.png.starts_with(&PNG_SIGNATURE));
        // The IEND chunk and its well-known CRC close every PNG.
        assert!(
            image
                .png
                .ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82])
        );
        assert_eq!(&image.png[16..24], &[0, 0, 0, 2, 0, 0, 0, 1]);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert!(Image::png(Image::from_rgb(300, 300, &[]).png).is_ok());
    }

    #[test]
    fn clones_share_one_card_across_threads() {
        let card = CardWriter::detached();
        let other = card.clone();
        assert!(card.same_card(&other));
        std::thread::spawn(move || {
            other.markdown("from a thread");
        })
        .join()
        .unwrap();
        card.markdown("here");
        assert_eq!(card.snapshot().components.len(), 2);
        assert!(!card.same_card(&CardWriter::detached()));
        assert_eq!(card.take().components.len(), 2);
        assert!(card.snapshot().is_empty());
    }

    #[test]
    fn a_full_card_drops_components_and_counts_them() {
        let card = CardWriter::detached();
        let big = "x".repeat(MAX_CARD_SIZE / 3);
        for _ in 0..5 {
            card.markdown(big.clone());
        }
        card.markdown("small still fits");
        let snapshot = card.snapshot();
        // Two thirds fit; a third third would pass the limit with the encoding's overhead.
        assert_eq!(snapshot.components.len(), 3);
        assert_eq!(snapshot.dropped, 3);
        assert_eq!(
            snapshot.components[2],
            Component::Markdown("small still fits".into())
        );
        assert!(!snapshot.is_empty());
        let encoded = encode(&snapshot).unwrap();
        assert!(encoded.len() <= MAX_CARD_SIZE, "{}", encoded.len());
    }

    #[test]
    fn round_trips_and_rejects_damage() {
        let card = CardWriter::detached();
        card.markdown("# hi")
            .table(Table::new(["n"]).row([1]))
            .chart(Chart::scatter("s").series("a", [1.0, f64::NAN]));
        card.png(png(), "c").unwrap();
        let card = card.take();
        let bytes = encode(&card).unwrap();
        let back = decode(&bytes).unwrap();
        assert_eq!(back.components.len(), 4);
        assert_eq!(back.components[0], card.components[0]);
        assert!(decode(&bytes[..bytes.len() - 3]).is_err());
        assert!(decode(b"\xdd\xff\xff\xff\xff").is_err());
    }
}
