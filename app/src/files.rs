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

/// A large file being written on disk through a 1 MiB buffer.
pub struct DiskFile {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
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
        Ok(DiskFile { path: path.to_path_buf(), out: std::io::BufWriter::with_capacity(1 << 20, file) })
    }
}

impl Write for DiskFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl FinishFile for DiskFile {
    fn finish_file(mut self) -> std::io::Result<Self> {
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        Ok(self)
    }
    fn discard(self) {
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
