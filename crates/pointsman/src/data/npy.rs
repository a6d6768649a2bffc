//! Reading and writing 2-D little-endian `float16` / `float32` arrays in NumPy's `.npy` format
//! (versions 1.0–3.0, C order), the format the datasets store embeddings in.

use std::path::Path;

use half::f16;

use crate::error::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Element type of an array file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// `<f2`.
    F16,
    /// `<f4`.
    F32,
}

/// A 2-D array read from a `.npy` file, widened to `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct Array2 {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// The values, row-major.
    pub data: Vec<f32>,
}

/// Reads a 2-D `<f2` or `<f4` C-order array.
///
/// # Errors
///
/// [`Error::Io`] when the file cannot be read; [`Error::Format`] naming the file for a bad magic
/// string, an unsupported dtype or layout, a shape that is not 2-D, or a data section of the
/// wrong length.
pub fn read(path: &Path) -> Result<Array2> {
    use std::io::Read;
    let what = path.display().to_string();
    let (mut file, size) = crate::files::open_regular(path)?;
    // The header first (at most its 12 fixed bytes and the header text), checked against the
    // file's size before the data is read: a large file that is not an array is refused after
    // a few bytes.
    let mut bytes = vec![0u8; size.min(12) as usize];
    file.read_exact(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    let mut have = bytes.len();
    let (_, header_end) = header_start(&bytes, &what)?;
    if header_end as u64 > size {
        return Err(Error::format(&what, "truncated header"));
    }
    if header_end > have {
        bytes.resize(header_end, 0);
        file.read_exact(&mut bytes[have..])
            .map_err(|e| Error::io(path, e))?;
        have = header_end;
    }
    let header = parse_header(&bytes, &what)?;
    let expected = header.data_bytes;
    if size != (header_end + expected) as u64 {
        return Err(Error::format(
            &what,
            format!(
                "data holds {} bytes, shape ({}, {}) needs {expected}",
                size.saturating_sub(header_end as u64),
                header.rows,
                header.cols
            ),
        ));
    }
    bytes.resize(header_end + expected, 0);
    file.read_exact(&mut bytes[have..])
        .map_err(|e| Error::io(path, e))?;
    parse(&bytes, &what)
}

/// Where the header text starts and ends in a file beginning with `prefix` (at least its first
/// 12 bytes, or the whole file when shorter).
fn header_start(prefix: &[u8], what: &str) -> Result<(usize, usize)> {
    let bad = |m: String| Error::format(what, m);
    if prefix.len() < 10 || &prefix[..6] != MAGIC {
        return Err(bad("not a .npy file (bad magic string)".into()));
    }
    let (header_len, start) = match prefix[6] {
        1 => (
            usize::from(u16::from_le_bytes([prefix[8], prefix[9]])),
            10usize,
        ),
        2 | 3 => {
            if prefix.len() < 12 {
                return Err(bad("truncated header".into()));
            }
            let n = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
            (n as usize, 12)
        }
        v => return Err(bad(format!("unsupported .npy version {v}"))),
    };
    let end = start
        .checked_add(header_len)
        .ok_or_else(|| bad("truncated header".into()))?;
    Ok((start.min(prefix.len()), end))
}

/// A parsed `.npy` header.
struct Header {
    dtype: Dtype,
    rows: usize,
    cols: usize,
    /// Where the data starts.
    data_start: usize,
    /// How many bytes of data the shape needs.
    data_bytes: usize,
}

/// Parses the header of the `.npy` bytes `bytes` (the data may be missing).
fn parse_header(bytes: &[u8], what: &str) -> Result<Header> {
    let bad = |m: String| Error::format(what, m);
    let (start, end) = header_start(bytes, what)?;
    if end > bytes.len() {
        return Err(bad("truncated header".into()));
    }
    let header =
        std::str::from_utf8(&bytes[start..end]).map_err(|_| bad("header is not text".into()))?;
    let descr = header_value(header, "descr").ok_or_else(|| bad("header has no descr".into()))?;
    let dtype = match descr.trim_matches(|c| c == '\'' || c == '"') {
        "<f2" => Dtype::F16,
        "<f4" => Dtype::F32,
        other => {
            return Err(bad(format!(
                "unsupported dtype {other} (expected <f2 or <f4)"
            )))
        }
    };
    let fortran = header_value(header, "fortran_order")
        .ok_or_else(|| bad("header has no fortran_order".into()))?;
    if fortran.trim() != "False" {
        return Err(bad("fortran-order arrays are not supported".into()));
    }
    let shape = header_value(header, "shape").ok_or_else(|| bad("header has no shape".into()))?;
    let dims: Vec<usize> = shape
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad(format!("bad shape {shape}")))?;
    let [rows, cols] = dims[..] else {
        return Err(bad(format!("expected a 2-d array, got shape {shape}")));
    };
    let width = match dtype {
        Dtype::F16 => 2,
        Dtype::F32 => 4,
    };
    let data_bytes = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(width))
        .ok_or_else(|| bad(format!("shape {shape} is too large")))?;
    Ok(Header {
        dtype,
        rows,
        cols,
        data_start: end,
        data_bytes,
    })
}

/// Parses the bytes of a `.npy` file; `what` names the file in errors.
///
/// # Errors
///
/// As [`read`].
pub fn parse(bytes: &[u8], what: &str) -> Result<Array2> {
    let h = parse_header(bytes, what)?;
    let body = &bytes[h.data_start..];
    if body.len() != h.data_bytes {
        return Err(Error::format(
            what,
            format!(
                "data holds {} bytes, shape ({}, {}) needs {}",
                body.len(),
                h.rows,
                h.cols,
                h.data_bytes
            ),
        ));
    }
    let data = match h.dtype {
        Dtype::F16 => body
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F32 => body
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    };
    Ok(Array2 {
        rows: h.rows,
        cols: h.cols,
        data,
    })
}

/// The raw text of `key`'s value in a `.npy` header dictionary.
fn header_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find(',').or_else(|| rest.find('}'))?
    };
    Some(&rest[..end])
}

/// Serialises a 2-D array as a version 1.0 `.npy` file of the given dtype.
///
/// # Panics
///
/// When `data.len() != rows * cols`.
pub fn to_bytes(data: &[f32], rows: usize, cols: usize, dtype: Dtype) -> Vec<u8> {
    assert_eq!(
        data.len(),
        rows * cols,
        "array data does not match its shape"
    );
    let descr = match dtype {
        Dtype::F16 => "<f2",
        Dtype::F32 => "<f4",
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Pad so that the data starts on a 64-byte boundary; the header ends with a newline.
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    match dtype {
        Dtype::F16 => {
            for &v in data {
                out.extend_from_slice(&f16::from_f32(v).to_le_bytes());
            }
        }
        Dtype::F32 => {
            for &v in data {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    out
}

/// Writes a 2-D array as a `.npy` file, atomically (temporary file, then rename).
///
/// # Errors
///
/// [`Error::Io`] when the file cannot be written.
pub fn write(path: &Path, data: &[f32], rows: usize, cols: usize, dtype: Dtype) -> Result<()> {
    crate::files::write_atomic(path, &to_bytes(data, rows, cols, dtype))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_f16_and_f32() {
        let data = [0.5f32, -1.25, 3.0, 0.0, 1e-3, 2.0];
        for dtype in [Dtype::F16, Dtype::F32] {
            let bytes = to_bytes(&data, 2, 3, dtype);
            assert_eq!(
                (bytes.len() - data.len() * if dtype == Dtype::F16 { 2 } else { 4 }) % 64,
                0
            );
            let a = parse(&bytes, "x.npy").unwrap();
            assert_eq!((a.rows, a.cols), (2, 3));
            for (x, y) in a.data.iter().zip(&data) {
                assert!((x - y).abs() < 1e-3);
            }
        }
    }

    #[test]
    fn bad_files() {
        let e = parse(b"hello world!", "x.npy").unwrap_err();
        assert_eq!(e.to_string(), "x.npy: not a .npy file (bad magic string)");
        let mut bytes = to_bytes(&[1.0, 2.0], 1, 2, Dtype::F16);
        bytes.pop();
        let e = parse(&bytes, "x.npy").unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.npy: data holds 3 bytes, shape (1, 2) needs 4"
        );
        let bytes = to_bytes(&[1.0, 2.0], 1, 2, Dtype::F16);
        let replace = |from: &str, to: &str| -> Vec<u8> {
            assert_eq!(from.len(), to.len());
            let at = bytes
                .windows(from.len())
                .position(|w| w == from.as_bytes())
                .unwrap();
            let mut b = bytes.clone();
            b[at..at + to.len()].copy_from_slice(to.as_bytes());
            b
        };
        let e = parse(&replace("<f2", "<i8"), "x.npy").unwrap_err();
        assert!(e.to_string().contains("unsupported dtype <i8"), "{e}");
        let e = parse(&replace("(1, 2)", "(2,)  "), "x.npy").unwrap_err();
        assert!(e.to_string().contains("expected a 2-d array"), "{e}");
        let e = parse(&bytes[..20], "x.npy").unwrap_err();
        assert!(e.to_string().contains("truncated header"), "{e}");
    }
}
