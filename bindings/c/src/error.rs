//! Error objects handed to C.

use std::ffi::{c_char, CString};

use crate::guard;
use crate::status::{pm_status, status_of};

/// Why a call failed: a status and a message (lower case, naming the offending values, such as
/// `"dimension mismatch: expected 384, got 768"`).
///
/// Created by the library when a call fails and `err` is not NULL; owned by the caller, who
/// frees it with `pm_error_free`.
///
/// Thread safety: immutable. It may be read from several threads at once and freed on any
/// thread, once, after the last read.
#[derive(Debug)]
pub struct pm_error {
    status: pm_status,
    message: CString,
}

/// A failed call before it becomes a [`pm_error`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub(crate) status: pm_status,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: pm_status, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn null(name: &str) -> Self {
        Failure::new(
            pm_status::PM_STATUS_NULL_ARGUMENT,
            format!("{name} is NULL"),
        )
    }

    pub(crate) fn into_error(self) -> pm_error {
        // A message never holds NUL in practice; if one did, the C string would end there.
        let bytes: Vec<u8> = self.message.into_bytes();
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let message = CString::new(&bytes[..end]).expect("NUL bytes were cut off");
        pm_error {
            status: self.status,
            message,
        }
    }
}

impl From<pointsman::Error> for Failure {
    fn from(e: pointsman::Error) -> Self {
        Failure::new(status_of(e.kind()), e.to_string())
    }
}

/// The status of an error; `PM_STATUS_NULL_ARGUMENT` when `err` is NULL.
///
/// Thread safety: as `pm_error`.
///
/// # Safety
///
/// `err` is NULL or an error returned by this library and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn pm_error_status(err: *const pm_error) -> pm_status {
    guard::query(pm_status::PM_STATUS_PANIC, || {
        // SAFETY: the caller passes NULL or a live error.
        match unsafe { err.as_ref() } {
            Some(e) => e.status,
            None => pm_status::PM_STATUS_NULL_ARGUMENT,
        }
    })
}

/// The message of an error, NUL-terminated UTF-8, borrowed: valid until the error is freed.
/// NULL when `err` is NULL.
///
/// Thread safety: as `pm_error`.
///
/// # Safety
///
/// `err` is NULL or an error returned by this library and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn pm_error_message(err: *const pm_error) -> *const c_char {
    guard::query(std::ptr::null(), || {
        // SAFETY: the caller passes NULL or a live error.
        match unsafe { err.as_ref() } {
            Some(e) => e.message.as_ptr(),
            None => std::ptr::null(),
        }
    })
}

/// Frees an error. `pm_error_free(NULL)` does nothing.
///
/// # Safety
///
/// `err` is NULL or an error returned by this library, freed only once.
#[no_mangle]
pub unsafe extern "C" fn pm_error_free(err: *mut pm_error) {
    guard::query((), || {
        if !err.is_null() {
            // SAFETY: the error came from Box::into_raw in `guard::call` and is freed once.
            drop(unsafe { Box::from_raw(err) });
        }
    })
}
