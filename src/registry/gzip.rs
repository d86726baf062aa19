//! Gzip for layers that arrive uncompressed (`docker save`): streamed into a file while hashing what is
//! written, with a fixed header (no name, no time) so the same layer always gives the same blob. No
//! network, no AWS API.

use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Does the stream start with the gzip magic `1f 8b`?
pub(super) fn is_gzip(mut r: impl Read) -> std::io::Result<bool> {
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        let n = r.read(&mut magic[got..])?;
        if n == 0 {
            return Ok(false);
        }
        got += n;
    }
    Ok(magic == [0x1f, 0x8b])
}

/// Gzip `r` into the file `dest`; the `sha256:` digest and size of what was written.
pub(super) fn compress_to(mut r: impl Read, dest: &Path) -> std::io::Result<(String, u64)> {
    let out = std::fs::File::create(dest)?;
    let hashing = Hashing {
        inner: std::io::BufWriter::with_capacity(256 * 1024, out),
        hash: Sha256::new(),
        len: 0,
    };
    // Default level, no name and no mtime in the header: the same layer always gives the same blob.
    let mut gz = flate2::GzBuilder::new().write(hashing, flate2::Compression::default());
    std::io::copy(&mut r, &mut gz)?;
    let mut hashing = gz.finish()?;
    hashing.flush()?;
    Ok((
        format!("sha256:{}", hex::encode(hashing.hash.finalize())),
        hashing.len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_reproducible_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"layer bytes ".repeat(1000);
        let (a, la) = compress_to(&data[..], &dir.path().join("a")).unwrap();
        let (b, lb) = compress_to(&data[..], &dir.path().join("b")).unwrap();
        assert_eq!((a.clone(), la), (b, lb), "same input, same blob");
        let gz = std::fs::read(dir.path().join("a")).unwrap();
        assert_eq!(gz.len() as u64, la);
        assert_eq!(a, format!("sha256:{}", hex::encode(Sha256::digest(&gz))));
        assert!(is_gzip(&gz[..]).unwrap());
        assert!(!is_gzip(&data[..]).unwrap());
        assert!(!is_gzip(&b"\x1f"[..]).unwrap());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }
}
