//! Opening a safetensors file with the safetensors crate, naming the tensor its own error
//! leaves unnamed. Used by saved routers, guards and the exchange's containers.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// `bytes` as a safetensors file — its tensors and its header — checked by the safetensors crate
/// (header, offsets, sizes); `what` names the source in errors.
///
/// # Errors
///
/// [`Error::Format`] with the crate's reason; for a tensor whose shape and data type do not
/// fill its byte range, which the crate reports without a name, naming the tensor.
pub(crate) fn open_safetensors<'a>(
    bytes: &'a [u8],
    what: &str,
) -> Result<(safetensors::SafeTensors<'a>, safetensors::tensor::Metadata)> {
    let bad = |e: safetensors::SafeTensorError| {
        let reason = match e {
            safetensors::SafeTensorError::TensorInvalidInfo => {
                mismatched_tensor(bytes).unwrap_or_else(|| e.to_string())
            }
            e => e.to_string(),
        };
        Error::format(what, format!("not a valid safetensors file: {reason}"))
    };
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(bad)?;
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(bad)?;
    Ok((st, header))
}

/// The first tensor of a safetensors header (`bytes`: the whole file) whose shape and data type
/// do not fill its byte range, described; `None` when the header does not parse or every tensor
/// fits. Only called on a file the crate refused, so it reads the header itself.
fn mismatched_tensor(bytes: &[u8]) -> Option<String> {
    let len = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(bytes.get(8..8usize.checked_add(len)?)?).ok()?;
    header
        .into_iter()
        .filter(|(name, _)| name != "__metadata__")
        .find_map(|(name, value)| {
            let info: safetensors::tensor::TensorInfo = serde_json::from_value(value).ok()?;
            let (start, end) = info.data_offsets;
            let span = end.checked_sub(start)?;
            let bits = info
                .shape
                .iter()
                .try_fold(info.dtype.bitsize(), |a, &d| a.checked_mul(d))?;
            (Some(bits) != span.checked_mul(8)).then(|| {
                format!(
                    "tensor `{name}` of shape {:?} and type {:?} needs {} bytes, but its offsets \
                     hold {span}",
                    info.shape,
                    info.dtype,
                    bits.div_ceil(8)
                )
            })
        })
}

#[cfg(test)]
mod unit {
    use super::*;

    /// A one-tensor file whose header says shape `[2, 3]` (24 bytes of F32), with `shape`
    /// written in its place (the same length, so the offsets stay put).
    fn file_with_shape(shape: &str) -> Vec<u8> {
        let data = vec![0u8; 24];
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 3], &data)
            .unwrap();
        let mut bytes = safetensors::serialize([("linucb.b", view)], None).unwrap();
        let at = bytes.windows(5).position(|w| w == b"[2,3]").unwrap();
        bytes[at..at + 5].copy_from_slice(shape.as_bytes());
        bytes
    }

    #[test]
    fn a_tensor_that_does_not_fill_its_bytes_is_named() {
        assert!(open_safetensors(&file_with_shape("[2,3]"), "t").is_ok());
        let err = open_safetensors(&file_with_shape("[2,4]"), "router.safetensors")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("router.safetensors")
                && err.contains(
                    "tensor `linucb.b` of shape [2, 4] and type F32 needs 32 bytes, but its \
                     offsets hold 24"
                ),
            "{err}"
        );
        // Other refusals keep the crate's own reason.
        let err = open_safetensors(b"not a file", "t")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a valid safetensors file"), "{err}");
        assert_eq!(mismatched_tensor(b"garbage"), None);
    }
}
