//! Writing large temporary files past the page cache, on a second thread.
//!
//! A large blob (a model's weights, a dataset) is written once and rarely read back by the same
//! process soon after. Through the page cache, each of its pages must first be allocated and
//! then copied into by the writing thread; on the virtual machines this project is measured on,
//! that copy ran at about 350 MB/s, while the same disk took direct writes at 1.5–2 GB/s
//! (`dd oflag=direct`). So on Linux, [`DirectWriter`] copies what it is given into aligned
//! buffers and a writer thread hands them to the file opened with `O_DIRECT`, while the caller
//! goes on encoding and hashing the next chunk. The tail that does not fill a whole block is
//! written through the page cache at the end.
//!
//! Where direct I/O is not available (another OS, a file system that refuses `O_DIRECT` such
//! as tmpfs, an alignment the device rejects), the writer falls back to ordinary writes from
//! the same thread, transparently; also when the device accepts the open but refuses a write
//! later (`EINVAL` mid-file).
//!
//! The file must end up holding exactly the bytes given, in order: a blob is committed under
//! the hash of those bytes. So every byte gets its offset in the file when it is given (each
//! buffer carries the offset of its first byte, and every write, direct or not, goes to that
//! offset), the thread takes a buffer only by rendezvous (a buffer the caller could hand over
//! is one the thread holds, and it either writes it or hands it back), and [`DirectWriter::finish`]
//! checks that the bytes written add up to the bytes given and that the file has that length
//! before anything is committed.

use std::fs::File;
use std::io::{self, Write};

/// The size of each buffer handed to the writer thread: large enough that every direct write
/// is a long sequential one, small enough that two of them do not matter next to the values
/// worth streaming.
pub(super) const CHUNK: usize = 8 << 20;

/// A streamed writer of one file, direct on Linux where the file system allows it.
pub(super) struct DirectWriter {
    /// The file opened normally: the tail, and everything when direct I/O is not available.
    buffered: File,
    /// How many bytes were given to the writer: the offset in the file of the next one.
    given: u64,
    /// How many bytes the buffered path wrote; with the direct path's count, this must add up to
    /// `given` at the end (each byte written once, none skipped).
    written_buffered: u64,
    /// How many bytes the direct path wrote, once it stopped.
    written_direct: u64,
    direct: Option<direct::Pipeline>,
    /// A write failed: the file is not what was given, and nothing more is accepted.
    failed: bool,
}

impl DirectWriter {
    /// A writer of `file` (just created, empty); `direct` is the same file opened a second time
    /// with `O_DIRECT` where that worked, `None` where it did not.
    pub(super) fn new(file: File, direct: Option<File>) -> Self {
        Self::with_pipeline(file, direct.and_then(direct::Pipeline::start))
    }

    /// A writer of `file` whose direct writes go to a clone of it and fail with the OS error
    /// `errno` once `accept` of them succeeded: EINVAL is a device that refuses direct I/O after
    /// open, ENOSPC a full disk.
    #[cfg(all(test, target_os = "linux"))]
    pub(super) fn failing_direct_after(file: File, accept: usize, errno: i32) -> io::Result<Self> {
        let sink = testing::FailingAfter {
            file: file.try_clone()?,
            accept: accept.into(),
            error: errno,
        };
        Ok(Self::with_pipeline(file, direct::Pipeline::start(sink)))
    }

    fn with_pipeline(file: File, direct: Option<direct::Pipeline>) -> Self {
        DirectWriter {
            buffered: file,
            given: 0,
            written_buffered: 0,
            written_direct: 0,
            direct,
            failed: false,
        }
    }

    /// Writes what is still buffered, waits for the writer thread, and checks that the file
    /// holds as many bytes as were given, each written once; returns that count.
    ///
    /// # Errors
    ///
    /// The first write that failed, on either path; a file whose length, or whose count of
    /// bytes written, is not the count of bytes given.
    pub(super) fn finish(mut self) -> io::Result<u64> {
        if self.failed {
            return Err(io::Error::other("an earlier write to the file failed"));
        }
        if let Some(pipeline) = self.direct.take() {
            let leftover = pipeline.finish()?;
            self.write_leftover(leftover)?;
        }
        let written = self.written_direct + self.written_buffered;
        let length = self.buffered.metadata()?.len();
        if written != self.given || length != self.given {
            return Err(io::Error::other(format!(
                "{} bytes were given, {written} written, and the file holds {length}",
                self.given
            )));
        }
        Ok(self.given)
    }

    /// Writes, through the page cache, what the direct path was given and did not write.
    fn write_leftover(&mut self, leftover: direct::Leftover) -> io::Result<()> {
        self.written_direct = leftover.written;
        for piece in &leftover.pieces {
            self.write_buffered(piece.bytes(), piece.offset())?;
        }
        Ok(())
    }

    fn write_buffered(&mut self, data: &[u8], offset: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.buffered.write_all_at(data, offset)?;
        self.written_buffered += data.len() as u64;
        Ok(())
    }

    fn write_given(&mut self, data: &[u8]) -> io::Result<()> {
        let offset = self.given;
        self.given += data.len() as u64;
        let Some(pipeline) = &mut self.direct else {
            return self.write_buffered(data, offset);
        };
        match pipeline.write_all(data) {
            Ok(()) => Ok(()),
            Err(direct::Stop::Failed(error)) => {
                self.direct = None;
                Err(error)
            }
            Err(direct::Stop::Refused { leftover, taken }) => {
                // The device refused a direct write: what the direct path did not write goes
                // through the page cache, each piece to its own offset, then the rest of `data`.
                self.direct = None;
                self.write_leftover(leftover)?;
                self.write_buffered(&data[taken..], offset + taken as u64)
            }
        }
    }
}

impl Write for DirectWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data)?;
        Ok(data.len())
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("an earlier write to the file failed"));
        }
        let result = self.write_given(data);
        self.failed = result.is_err();
        result
    }

    fn flush(&mut self) -> io::Result<()> {
        // Nothing is visible before the object is committed, and `finish` writes everything.
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod testing {
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A direct sink that takes `accept` writes, then fails every other one with `error`: a
    /// device that refuses direct I/O after open (EINVAL), or a disk that fills up (ENOSPC).
    pub(super) struct FailingAfter {
        pub file: File,
        pub accept: AtomicUsize,
        pub error: i32,
    }

    impl super::direct::DirectSink for FailingAfter {
        fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            let taken = self
                .accept
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                });
            if taken.is_err() {
                return Err(io::Error::from_raw_os_error(self.error));
            }
            FileExt::write_all_at(&self.file, buf, offset)
        }
    }
}

#[cfg(target_os = "linux")]
mod direct {
    //! The direct-I/O pipeline: aligned buffers, filled by the caller, written by a thread.

    use std::alloc::{Layout, alloc, dealloc};
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::FileExt;
    use std::ptr::NonNull;
    use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
    use std::thread::JoinHandle;

    use super::CHUNK;

    /// Direct I/O needs buffers, offsets and lengths aligned to the device's logical block
    /// size; 4096 covers every common device (512 and 4096 bytes).
    const ALIGN: usize = 4096;

    /// Where direct writes go: the file opened with `O_DIRECT` (a stand-in that fails on
    /// demand in tests).
    pub(super) trait DirectSink: Send + 'static {
        /// Writes all of `buf` at `offset`.
        fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    }

    impl DirectSink for File {
        fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            FileExt::write_all_at(self, buf, offset)
        }
    }

    /// A heap buffer of [`CHUNK`] bytes aligned to [`ALIGN`], holding the bytes of the file
    /// from `offset` on.
    pub(super) struct AlignedBuf {
        ptr: NonNull<u8>,
        len: usize,
        offset: u64,
    }

    // SAFETY: the buffer is an exclusively owned heap allocation, like a `Vec<u8>`.
    unsafe impl Send for AlignedBuf {}

    impl AlignedBuf {
        fn layout() -> Layout {
            // CHUNK and ALIGN are non-zero powers of two.
            Layout::from_size_align(CHUNK, ALIGN)
                .unwrap_or_else(|e| unreachable!("a valid constant layout: {e}"))
        }

        fn new(offset: u64) -> Self {
            let layout = Self::layout();
            // SAFETY: the layout has a non-zero size.
            let ptr = unsafe { alloc(layout) };
            let Some(ptr) = NonNull::new(ptr) else {
                std::alloc::handle_alloc_error(layout)
            };
            AlignedBuf {
                ptr,
                len: 0,
                offset,
            }
        }

        /// This buffer emptied, to hold the bytes from `offset` on.
        fn reused(mut self, offset: u64) -> Self {
            self.len = 0;
            self.offset = offset;
            self
        }

        fn filled(&self) -> &[u8] {
            // SAFETY: the first `len` bytes were written by `fill` (len <= CHUNK).
            unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
        }

        /// Copies as much of `data` as fits; returns how many bytes were taken.
        fn fill(&mut self, data: &[u8]) -> usize {
            let n = data.len().min(CHUNK - self.len);
            // SAFETY: `len + n <= CHUNK`, the allocation's size, and `data` cannot overlap a
            // buffer this struct owns exclusively.
            unsafe {
                std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(self.len), n);
            }
            self.len += n;
            n
        }

        fn is_full(&self) -> bool {
            self.len == CHUNK
        }

        /// The offset of the byte after the last one held.
        fn end(&self) -> u64 {
            self.offset + self.len as u64
        }
    }

    impl Drop for AlignedBuf {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with this layout.
            unsafe { dealloc(self.ptr.as_ptr(), Self::layout()) }
        }
    }

    /// Bytes given to the pipeline and not written by it, with the offset they belong at.
    pub(super) enum Piece {
        Buf(AlignedBuf),
        Tail { offset: u64, bytes: Vec<u8> },
    }

    impl Piece {
        pub(super) fn bytes(&self) -> &[u8] {
            match self {
                Piece::Buf(buf) => buf.filled(),
                Piece::Tail { bytes, .. } => bytes,
            }
        }

        pub(super) fn offset(&self) -> u64 {
            match self {
                Piece::Buf(buf) => buf.offset,
                Piece::Tail { offset, .. } => *offset,
            }
        }
    }

    /// What the pipeline leaves to the buffered path when it stops: how many bytes it wrote,
    /// and every piece it was given and did not write.
    pub(super) struct Leftover {
        pub written: u64,
        pub pieces: Vec<Piece>,
    }

    /// Why the pipeline stopped taking data.
    pub(super) enum Stop {
        /// Direct I/O is not possible here: go on with buffered writes. `taken` bytes of the
        /// data being written are in the leftover pieces; the rest was not taken.
        Refused { leftover: Leftover, taken: usize },
        /// A write failed (disk full, I/O error).
        Failed(io::Error),
    }

    /// What the writer thread reports when it stops.
    struct Stopped {
        /// Bytes it wrote.
        written: u64,
        /// A write that failed with an error other than "direct I/O not possible here".
        error: Option<io::Error>,
        /// The buffer the device refused, if it refused one.
        refused: Option<AlignedBuf>,
    }

    pub(super) struct Pipeline {
        current: AlignedBuf,
        /// Full buffers to the writer thread, by rendezvous: a send that succeeds means the
        /// thread holds the buffer; one that fails gives the buffer back. No buffer can be lost
        /// in a queue between them.
        full: Option<SyncSender<AlignedBuf>>,
        /// Buffers coming back, written.
        free: Receiver<AlignedBuf>,
        thread: Option<JoinHandle<Stopped>>,
        /// Buffers in existence; at most two, so memory stays at 2 × CHUNK.
        allocated: usize,
    }

    impl Pipeline {
        /// A pipeline writing to `sink`, or `None` where its thread cannot be started.
        pub(super) fn start<S: DirectSink>(sink: S) -> Option<Pipeline> {
            let (full_tx, full_rx) = sync_channel::<AlignedBuf>(0);
            let (free_tx, free_rx) = sync_channel::<AlignedBuf>(2);
            let thread = std::thread::Builder::new()
                .name("blob-writer".into())
                .spawn(move || write_loop(&sink, &full_rx, &free_tx))
                .ok()?;
            Some(Pipeline {
                current: AlignedBuf::new(0),
                full: Some(full_tx),
                free: free_rx,
                thread: Some(thread),
                allocated: 1,
            })
        }

        pub(super) fn write_all(&mut self, data: &[u8]) -> Result<(), Stop> {
            let mut taken = 0;
            while taken < data.len() {
                taken += self.current.fill(&data[taken..]);
                if self.current.is_full() {
                    let next = self.next_buffer(self.current.end());
                    let full = std::mem::replace(&mut self.current, next);
                    if let Err(returned) = self.send(full) {
                        return Err(self.stopped_early(Some(returned), taken));
                    }
                }
            }
            Ok(())
        }

        /// Hands `buf` to the thread; gives it back if the thread has stopped.
        fn send(&self, buf: AlignedBuf) -> Result<(), AlignedBuf> {
            match &self.full {
                Some(tx) => tx.send(buf).map_err(|returned| returned.0),
                None => Err(buf),
            }
        }

        /// An empty buffer for the bytes from `offset` on: a new one while fewer than two
        /// exist, else one the thread has written (waiting for it: this is what keeps memory
        /// bounded).
        fn next_buffer(&mut self, offset: u64) -> AlignedBuf {
            if self.allocated < 2 {
                self.allocated += 1;
                return AlignedBuf::new(offset);
            }
            match self.free.recv() {
                Ok(buf) => buf.reused(offset),
                // The thread stopped; the next send gives this buffer back.
                Err(_) => AlignedBuf::new(offset),
            }
        }

        fn join(&mut self) -> Stopped {
            self.full = None;
            match self.thread.take().map(JoinHandle::join) {
                Some(Ok(stopped)) => stopped,
                _ => Stopped {
                    written: 0,
                    error: Some(io::Error::other("the blob writer thread panicked")),
                    refused: None,
                },
            }
        }

        /// After the thread stopped: its error, or every piece it did not write, in order of
        /// offset (the refused buffer, the one it could not be given, what was being filled).
        fn stopped_early(&mut self, returned: Option<AlignedBuf>, taken: usize) -> Stop {
            let stopped = self.join();
            if let Some(error) = stopped.error {
                return Stop::Failed(error);
            }
            let current = std::mem::replace(&mut self.current, AlignedBuf::new(0));
            let pieces = [stopped.refused, returned, Some(current)]
                .into_iter()
                .flatten()
                .filter(|buf| buf.len > 0)
                .map(Piece::Buf)
                .collect();
            Stop::Refused {
                leftover: Leftover {
                    written: stopped.written,
                    pieces,
                },
                taken,
            }
        }

        /// Sends the whole blocks of the last buffer, waits for the writer thread, and returns
        /// what it wrote and what is left to write: the tail shorter than a block, and
        /// everything the thread did not write if it refused.
        pub(super) fn finish(mut self) -> io::Result<Leftover> {
            let whole = self.current.len / ALIGN * ALIGN;
            let tail = Piece::Tail {
                offset: self.current.offset + whole as u64,
                bytes: self.current.filled()[whole..].to_vec(),
            };
            self.current.len = whole;
            let mut returned = None;
            if whole > 0 {
                let last = std::mem::replace(&mut self.current, AlignedBuf::new(0));
                returned = self.send(last).err();
            }
            let stopped = self.join();
            if let Some(error) = stopped.error {
                return Err(error);
            }
            let pieces = [stopped.refused, returned]
                .into_iter()
                .flatten()
                .map(Piece::Buf)
                .chain([tail])
                .filter(|piece| !piece.bytes().is_empty())
                .collect();
            Ok(Leftover {
                written: stopped.written,
                pieces,
            })
        }
    }

    impl Drop for Pipeline {
        fn drop(&mut self) {
            // An abandoned write: let the thread end before the file is removed.
            self.full = None;
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    fn write_loop<S: DirectSink>(
        sink: &S,
        full: &Receiver<AlignedBuf>,
        free: &SyncSender<AlignedBuf>,
    ) -> Stopped {
        let mut written = 0u64;
        while let Ok(buf) = full.recv() {
            match sink.write_all_at(buf.filled(), buf.offset) {
                Ok(()) => {
                    written += buf.len as u64;
                    // At most two buffers exist, so there is always room; the filler may have
                    // stopped waiting (it is finishing): fine.
                    if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                        free.try_send(buf)
                    {}
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    // Alignment or the file system refused direct I/O. A partial write may
                    // have happened; the buffered path rewrites the whole buffer at its offset.
                    return Stopped {
                        written,
                        error: None,
                        refused: Some(buf),
                    };
                }
                Err(e) => {
                    return Stopped {
                        written,
                        error: Some(e),
                        refused: None,
                    };
                }
            }
        }
        Stopped {
            written,
            error: None,
            refused: None,
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod direct {
    //! No direct I/O here: the writer always takes the buffered path.

    use std::fs::File;
    use std::io;

    pub(super) enum Piece {}

    impl Piece {
        pub(super) fn bytes(&self) -> &[u8] {
            match *self {}
        }

        pub(super) fn offset(&self) -> u64 {
            match *self {}
        }
    }

    pub(super) struct Leftover {
        pub written: u64,
        pub pieces: Vec<Piece>,
    }

    pub(super) enum Stop {
        Refused { leftover: Leftover, taken: usize },
        Failed(io::Error),
    }

    pub(super) enum Pipeline {}

    impl Pipeline {
        pub(super) fn start(_file: File) -> Option<Pipeline> {
            None
        }

        pub(super) fn write_all(&mut self, _data: &[u8]) -> Result<(), Stop> {
            match *self {}
        }

        pub(super) fn finish(self) -> io::Result<Leftover> {
            match self {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::path::Path;

    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    /// A writer of a new file at `path`, direct where the file system allows it.
    fn writer(path: &Path) -> DirectWriter {
        let file = File::create(path).unwrap();
        #[cfg(target_os = "linux")]
        let direct = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(path)
                .ok()
        };
        #[cfg(not(target_os = "linux"))]
        let direct = None;
        DirectWriter::new(file, direct)
    }

    fn write_in_pieces(path: &Path, data: &[u8], piece: usize) {
        let mut writer = writer(path);
        for chunk in data.chunks(piece) {
            writer.write_all(chunk).unwrap();
        }
        writer.finish().unwrap();
    }

    fn read(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        File::open(path).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn every_size_around_blocks_and_chunks_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = [
            0,
            1,
            4095,
            4096,
            4097,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK + 4096 + 17,
            5 * CHUNK,
        ];
        for (i, &size) in sizes.iter().enumerate() {
            let data = pattern(size);
            for piece in [1 << 20, 3, CHUNK + 5] {
                if piece == 3 && size > CHUNK {
                    continue; // byte-sized pieces of tens of MiB only slow the test down
                }
                let path = dir.path().join(format!("f{i}-{piece}"));
                write_in_pieces(&path, &data, piece);
                assert_eq!(read(&path), data, "size {size}, pieces of {piece}");
            }
        }
    }

    #[test]
    fn dropping_without_finishing_stops_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abandoned");
        let mut writer = writer(&path);
        writer.write_all(&pattern(3 * CHUNK + 9)).unwrap();
        drop(writer);
        // The file may hold part of the data; what matters is that nothing hangs or panics.
        assert!(read(&path).len() <= 3 * CHUNK + 9);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_direct_write_refused_after_open_loses_and_repeats_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = pattern(5 * CHUNK + 4096 + 123);
        for accept in [0, 1, 2, 4, 5] {
            for piece in [1 << 20, 3 * CHUNK + 7] {
                let path = dir.path().join(format!("refused-after-{accept}-{piece}"));
                let file = File::create(&path).unwrap();
                let mut writer =
                    DirectWriter::failing_direct_after(file, accept, libc::EINVAL).unwrap();
                for chunk in data.chunks(piece) {
                    writer.write_all(chunk).unwrap();
                }
                assert_eq!(writer.finish().unwrap(), data.len() as u64);
                let written = read(&path);
                assert_eq!(
                    written.len(),
                    data.len(),
                    "refused after {accept} direct writes, pieces of {piece}"
                );
                assert!(
                    written == data,
                    "refused after {accept} direct writes, pieces of {piece}: the file differs from what was written"
                );
            }
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_direct_write_fails_the_file_instead_of_falling_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = pattern(4 * CHUNK + 5);
        for accept in [0, 2] {
            let path = dir.path().join(format!("full-after-{accept}"));
            let file = File::create(&path).unwrap();
            let mut writer =
                DirectWriter::failing_direct_after(file, accept, libc::ENOSPC).unwrap();
            let mut failure = None;
            for chunk in data.chunks(1 << 20) {
                if let Err(e) = writer.write_all(chunk) {
                    failure = Some(e);
                    break;
                }
            }
            let failure = match failure {
                Some(e) => e,
                None => writer.finish().unwrap_err(),
            };
            assert_eq!(failure.raw_os_error(), Some(libc::ENOSPC), "{failure}");
        }
    }

    #[test]
    fn finishing_checks_the_file_holds_what_was_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grown");
        let mut writer = writer(&path);
        writer.write_all(&pattern(CHUNK + 3)).unwrap();
        // Something else wrote past the end (as a buffer written twice at the wrong offset
        // would): the file is longer than what was given, and finishing says so.
        let mut other = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        other.write_all(&pattern(2 * CHUNK)).unwrap();
        let err = writer.finish().unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("{} bytes were given", CHUNK + 3)),
            "{err}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_system_without_direct_io_falls_back() {
        // /dev/shm is tmpfs on Linux, which refuses O_DIRECT at open.
        let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        let path = dir.path().join("f");
        let data = pattern(2 * CHUNK + 123);
        write_in_pieces(&path, &data, 1 << 20);
        assert_eq!(read(&path), data);
    }
}
