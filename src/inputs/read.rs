//! Reading one input file safely: kind and size first, then bytes, then text.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::error::InputProblem;

/// Binary files almost always hold a NUL byte near their start; text never does.
const SNIFF_BYTES: usize = 8 * 1024;

/// Read `path` as UTF-8 text of at most `limit` bytes. The kind and size are checked before
/// reading: a pipe, socket or device is refused without being opened (opening a pipe blocks
/// until something writes to it), and a 50 MB file costs a `stat`, not 50 MB of memory. A
/// leading byte-order mark is dropped.
pub(crate) fn read_text(path: &Path, limit: u64) -> Result<String, InputProblem> {
    let unreadable = |error: std::io::Error| InputProblem::Unreadable {
        path: path.to_owned(),
        message: error.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(not_a_file(path, &meta));
    }
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    if size > limit {
        return Err(InputProblem::TooLarge {
            path: path.to_owned(),
            size,
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // `take` guards against a file that grows between the stat and the read.
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > limit {
        return Err(InputProblem::TooLarge {
            path: path.to_owned(),
            size: bytes.len() as u64,
            limit,
        });
    }
    decode(path, bytes)
}

/// Why `path`, which is no regular file, cannot be read.
pub(crate) fn not_a_file(path: &Path, meta: &std::fs::Metadata) -> InputProblem {
    InputProblem::Unreadable {
        path: path.to_owned(),
        message: if meta.is_dir() {
            "a directory, not a file".into()
        } else {
            "not a regular file (a pipe, socket or device)".into()
        },
    }
}

/// Bytes to text, refusing binary data, a NUL byte anywhere and invalid UTF-8.
pub(crate) fn decode(path: &Path, bytes: Vec<u8>) -> Result<String, InputProblem> {
    if bytes[..bytes.len().min(SNIFF_BYTES)].contains(&0) {
        return Err(InputProblem::Binary {
            path: path.to_owned(),
        });
    }
    // Text past the sniffed start may still hide a NUL, which cuts a C string and is no
    // character of any prompt.
    if let Some(offset) = memchr::memchr(0, &bytes) {
        return Err(InputProblem::Nul {
            from: format!("`{}`", path.display()),
            offset,
        });
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(match text.strip_prefix('\u{feff}') {
            Some(rest) => rest.to_owned(),
            None => text,
        }),
        Err(error) => Err(InputProblem::NotUtf8 {
            path: path.to_owned(),
            offset: error.utf8_error().valid_up_to(),
        }),
    }
}

/// If `path` is a symbolic link whose target lies outside `root`, the target.
/// `root` must already be canonical.
pub(crate) fn link_escaping(path: &Path, root: &Path) -> Result<Option<PathBuf>, InputProblem> {
    let is_link = std::fs::symlink_metadata(path)
        .map(|meta| meta.file_type().is_symlink())
        .unwrap_or(false);
    if !is_link {
        return Ok(None);
    }
    let target = match std::fs::canonicalize(path) {
        Ok(target) => target,
        // A dangling link: name where it points, for the message.
        Err(_) => {
            let target = std::fs::read_link(path).unwrap_or_default();
            return Ok(Some(target));
        }
    };
    Ok((!target.starts_with(root)).then_some(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_binary_invalid_utf8_and_oversized_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let binary = dir.path().join("logo.png");
        std::fs::write(&binary, b"\x89PNG\r\n\x1a\n\0\0\0").expect("write");
        assert!(matches!(
            read_text(&binary, 1000),
            Err(InputProblem::Binary { .. })
        ));

        let latin1 = dir.path().join("notes.txt");
        std::fs::write(&latin1, b"caf\xe9").expect("write");
        assert!(matches!(
            read_text(&latin1, 1000),
            Err(InputProblem::NotUtf8 { offset: 3, .. })
        ));

        let big = dir.path().join("big.md");
        std::fs::write(&big, "x".repeat(2000)).expect("write");
        assert!(matches!(
            read_text(&big, 1000),
            Err(InputProblem::TooLarge {
                size: 2000,
                limit: 1000,
                ..
            })
        ));
    }

    #[test]
    fn a_nul_byte_past_the_sniffed_start_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notes.md");
        let mut text = vec![b'x'; SNIFF_BYTES + 10];
        text.push(0);
        std::fs::write(&path, text).expect("write");
        assert!(matches!(
            read_text(&path, 100_000),
            Err(InputProblem::Nul { offset, .. }) if offset == SNIFF_BYTES + 10
        ));
    }

    #[test]
    fn a_directory_is_not_read_as_a_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let problem = read_text(dir.path(), 100).expect_err("refused");
        assert!(problem.to_string().contains("a directory"), "{problem}");
    }

    #[test]
    fn drops_a_byte_order_mark() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.md");
        std::fs::write(&path, "\u{feff}hello").expect("write");
        assert_eq!(read_text(&path, 100).expect("reads"), "hello");
    }
}
