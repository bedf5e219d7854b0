//! 出力ファイル (durable output files): the one way daicho writes a file that must survive a
//! crash and be checked later. PMH batches and their companions, fee statements, audit bundles,
//! certificates and import reports all go through here.
//!
//! - [`write_synced`]: a new file, written and fsynced (the caller fsyncs the directory once
//!   after a set of files with [`sync_dir`]).
//! - [`replace`]: a file that may exist, replaced atomically: a temporary name in the same
//!   directory, fsync, rename, directory fsync. A crash leaves the old file or the new one.
//! - [`DiskFile`]: a large file streamed through a buffer, fsynced when finished or removed
//!   when discarded.
//! - [`sha256_hex`], [`file_sha256`]: the hashes recorded in the log and compared with files.
//!
//! Files are created with the process umask (077 in the CLI and the server: the owner's only).

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// An I/O failure on a named file (the path is the operator's, never personal data).
fn at(path: &Path, e: std::io::Error) -> String {
    format!("{}: {e}", path.display())
}

/// Writes `bytes` to `dir/name` and fsyncs the file.
pub fn write_synced(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).map_err(|e| at(&path, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| at(&path, e))
}

/// Makes new directory entries in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), String> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| at(dir, e))
}

/// Replaces `dir/name` with `bytes` atomically (temporary file, fsync, rename, directory
/// fsync); creates `dir` when missing.
pub fn replace(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| at(dir, e))?;
    let tmp = format!(".{name}.tmp");
    write_synced(dir, &tmp, bytes)?;
    std::fs::rename(dir.join(&tmp), dir.join(name)).map_err(|e| at(&dir.join(name), e))?;
    sync_dir(dir)
}

/// Refuses an output directory with files in it (a batch or bundle never overwrites another)
/// and creates it when missing.
pub fn empty_output_dir(out: &Path) -> Result<(), String> {
    if out.exists() && std::fs::read_dir(out).map_err(|e| at(out, e))?.next().is_some() {
        return Err(format!("{}: 出力先が空ではありません（別のディレクトリを指定してください）", out.display()));
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: 出力先を作れません: {e}", out.display()))
}

/// SHA-256 of bytes, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file (lower-case hex), read in chunks.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match std::io::Read::read(&mut file, &mut buf)? {
            0 => break,
            n => sha.update(&buf[..n]),
        }
    }
    Ok(hex(&sha.finalize()))
}

/// A file's writer that is finished (made durable) once what it holds is to be kept.
pub trait FinishFile: Write + Send + Sized {
    /// Makes the content durable (a file: flushed and fsynced).
    fn finish_file(self) -> std::io::Result<Self>;
    /// Throws the content away (a file is removed).
    fn discard(self);
}

impl FinishFile for Vec<u8> {
    fn finish_file(self) -> std::io::Result<Self> {
        Ok(self)
    }
    fn discard(self) {}
}

/// Bytes a [`DiskFile`] gathers before it writes them (a multiple of [`ALIGN`]).
const CHUNK: usize = 4 << 20;

/// The alignment of direct I/O: buffer address, length and file offset.
const ALIGN: usize = 4096;

/// A buffer whose start is aligned to [`ALIGN`] (direct I/O requires it), in safe code: a
/// larger allocation and an offset into it.
struct Aligned {
    raw: Vec<u8>,
    start: usize,
}

impl Aligned {
    fn new(len: usize) -> Aligned {
        let raw = vec![0u8; len + ALIGN];
        let start = (ALIGN - raw.as_ptr() as usize % ALIGN) % ALIGN;
        Aligned { raw, start }
    }

    fn get(&self, len: usize) -> &[u8] {
        &self.raw[self.start..self.start + len]
    }

    fn get_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + CHUNK]
    }
}

/// A large file being written on disk (batch files of millions of records, reports), in
/// chunks of 4 MiB. Where the file system allows it the chunks bypass the page cache
/// (`O_DIRECT`): a full export writes gigabytes, and through the cache it is throttled to the
/// kernel's writeback and evicts the read model the export is reading. The last partial chunk,
/// and everything after an explicit `flush`, is written through the cache; `finish_file`
/// fsyncs either way.
pub struct DiskFile {
    path: PathBuf,
    file: std::fs::File,
    /// A second descriptor of the file opened with `O_DIRECT`, while chunks can go that way.
    direct: Option<std::fs::File>,
    buf: Aligned,
    len: usize,
    /// Bytes written to the file so far (the next chunk's offset).
    offset: u64,
}

impl DiskFile {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path) -> std::io::Result<DiskFile> {
        DiskFile::of(path, std::fs::File::create(path)?)
    }

    /// Creates the file at `path`, refusing one that exists (a report never overwrites another).
    pub fn create_new(path: &Path) -> std::io::Result<DiskFile> {
        DiskFile::of(path, std::fs::File::create_new(path)?)
    }

    fn of(path: &Path, file: std::fs::File) -> std::io::Result<DiskFile> {
        use std::os::unix::fs::OpenOptionsExt;
        // Refused by some file systems (tmpfs): then every write goes through the cache.
        let flags = i32::try_from(rustix::fs::OFlags::DIRECT.bits()).unwrap_or(0);
        let direct = std::fs::OpenOptions::new().write(true).custom_flags(flags).open(path).ok();
        Ok(DiskFile { path: path.to_path_buf(), file, direct, buf: Aligned::new(CHUNK), len: 0, offset: 0 })
    }

    /// Writes the buffer's `len` bytes at the current offset: directly when it is a whole
    /// chunk and direct I/O works, else through the cache.
    fn write_buffer(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        if self.len == 0 {
            return Ok(());
        }
        let bytes = self.buf.get(self.len);
        let mut done = false;
        if let (Some(direct), true) = (&self.direct, self.len == CHUNK) {
            // A file system may take the descriptor and refuse the write (EINVAL, EOPNOTSUPP):
            // then this chunk and the rest go through the cache, whose error is the one told.
            done = direct.write_all_at(bytes, self.offset).is_ok();
            if !done {
                self.direct = None;
            }
        }
        if !done {
            self.file.write_all_at(bytes, self.offset)?;
        }
        self.offset += self.len as u64;
        self.len = 0;
        Ok(())
    }
}

impl Write for DiskFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // A full buffer is written first, so that an error means nothing of `buf` was taken.
        if self.len == CHUNK {
            self.write_buffer()?;
        }
        let n = buf.len().min(CHUNK - self.len);
        self.buf.get_mut()[self.len..self.len + n].copy_from_slice(&buf[..n]);
        self.len += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.len == CHUNK {
            self.write_buffer()?;
        }
        if self.len > 0 {
            // The offset is no longer aligned: the rest goes through the cache.
            self.direct = None;
            self.write_buffer()?;
        }
        Ok(())
    }
}

impl Drop for DiskFile {
    /// What is buffered reaches the file, as a `BufWriter` would do it (best effort: durable
    /// files are finished with [`FinishFile::finish_file`]).
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl FinishFile for DiskFile {
    fn finish_file(mut self) -> std::io::Result<Self> {
        self.flush()?;
        self.file.sync_all()?;
        Ok(self)
    }
    fn discard(mut self) {
        // Nothing more to write: the file goes.
        self.len = 0;
        // Best effort: whatever is written here is regenerable from the log.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_leaves_the_new_content_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        replace(dir.path(), "a.json", b"old").unwrap();
        replace(dir.path(), "a.json", b"new").unwrap();
        assert_eq!(std::fs::read(dir.path().join("a.json")).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
        assert_eq!(file_sha256(&dir.path().join("a.json")).unwrap(), sha256_hex(b"new"));
    }

    #[test]
    fn an_output_directory_with_files_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        empty_output_dir(&dir.path().join("out")).unwrap();
        write_synced(&dir.path().join("out"), "x", b"1").unwrap();
        assert!(empty_output_dir(&dir.path().join("out")).unwrap_err().contains("空ではありません"));
    }

    /// Sizes around the chunk and the alignment, with and without a flush half-way, on the
    /// disk of the tests' temporary directory (direct I/O where it has it) and, when there is
    /// one, on tmpfs (no direct I/O).
    #[test]
    fn a_disk_file_holds_exactly_what_was_written_whatever_the_sizes() {
        let mut dirs = vec![tempfile::tempdir().unwrap()];
        if Path::new("/dev/shm").is_dir() {
            dirs.extend(tempfile::tempdir_in("/dev/shm").ok());
        }
        for dir in &dirs {
            for (size, flush_at) in [
                (0, None),
                (1, None),
                (4095, None),
                (4096, Some(100)),
                (CHUNK, None),
                (CHUNK + 1, None),
                (3 * CHUNK - 7, Some(CHUNK + 5)),
                (2 * CHUNK, Some(CHUNK)),
            ] {
                let content: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
                let path = dir.path().join(format!("f-{size}"));
                let mut f = DiskFile::create(&path).unwrap();
                // Uneven writes, as a renderer makes them.
                let mut at = 0;
                for (k, piece) in content.chunks(1_000_003).enumerate() {
                    for part in piece.chunks(if k % 2 == 0 { 333_333 } else { piece.len().max(1) }) {
                        if flush_at.is_some_and(|f| at <= f && f < at + part.len()) {
                            let split = flush_at.unwrap_or(0) - at;
                            f.write_all(&part[..split]).unwrap();
                            f.flush().unwrap();
                            f.write_all(&part[split..]).unwrap();
                        } else {
                            f.write_all(part).unwrap();
                        }
                        at += part.len();
                    }
                }
                f.finish_file().unwrap();
                assert!(std::fs::read(&path).unwrap() == content, "{size} bytes in {}", dir.path().display());
            }
        }
    }

    #[test]
    fn a_discarded_disk_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.csv");
        let mut f = DiskFile::create(&path).unwrap();
        f.write_all(b"x").unwrap();
        f.discard();
        assert!(!path.exists());
    }
}
