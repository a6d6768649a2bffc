//! The call boundary: panic guard, error reporting and checked conversion of raw arguments.

use std::any::Any;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{pm_error, Failure};
use crate::status::pm_status;

/// What a call's body returns.
pub(crate) type Outcome = Result<(), Failure>;

/// Runs the body of a fallible entry point: catches panics, turns a failure into its status and,
/// when `err` is not NULL, into a new `pm_error` written to `*err`.
///
/// A misaligned `err` cannot be written: the call then does nothing and returns
/// `PM_STATUS_INVALID_ARGUMENT` (the body is not run, so nothing it would change changes).
pub(crate) fn call(err: *mut *mut pm_error, body: impl FnOnce() -> Outcome) -> pm_status {
    if !err.is_aligned() {
        return pm_status::PM_STATUS_INVALID_ARGUMENT;
    }
    let failure = match catch_unwind(AssertUnwindSafe(|| {
        inject::maybe_panic();
        body()
    })) {
        Ok(Ok(())) => return pm_status::PM_STATUS_OK,
        Ok(Err(failure)) => failure,
        Err(payload) => Failure::new(pm_status::PM_STATUS_PANIC, panic_message(payload)),
    };
    let status = failure.status;
    if !err.is_null() {
        // Building the error allocates only; guard it all the same, so that nothing can unwind
        // out of this function.
        if let Ok(boxed) = catch_unwind(AssertUnwindSafe(|| Box::new(failure.into_error()))) {
            // SAFETY: the caller passes NULL (checked above) or a writable `pm_error *` slot,
            // aligned (checked on entry).
            unsafe { err.write(Box::into_raw(boxed)) };
        }
    }
    status
}

/// Runs the body of an infallible entry point (a getter); a panic returns `on_panic`.
pub(crate) fn query<R>(on_panic: R, body: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(|| {
        inject::maybe_panic();
        body()
    }))
    .unwrap_or(on_panic)
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    let what = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string payload".to_string()
    };
    // Dropping a payload can itself panic (a payload type with a panicking Drop): contain it.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
    format!("panic inside libpointsman (a bug, please report it): {what}")
}

/// A shared reference from a pointer argument.
///
/// # Safety
///
/// `p` is NULL or points to a live `T` for `'a`.
pub(crate) unsafe fn arg_ref<'a, T>(p: *const T, name: &str) -> Result<&'a T, Failure> {
    check_aligned(p, name)?;
    // SAFETY: non-NULL (checked by as_ref) and aligned; validity is the caller's promise.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::null(name))
}

/// A slice from a pointer and a length. A NULL pointer is accepted when `len` is 0, so that an
/// empty C++ vector's `data()` can be passed.
///
/// # Safety
///
/// When `len > 0`, `p` points to `len` initialised values that stay valid and unmodified for `'a`.
pub(crate) unsafe fn arg_slice<'a, T>(
    p: *const T,
    len: usize,
    name: &str,
) -> Result<&'a [T], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    check_array(p, len, name)?;
    // SAFETY: non-NULL, aligned and not larger than isize::MAX bytes (checked above); the
    // caller promises `len` valid values.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A mutable slice from a pointer and a length; NULL is accepted when `len` is 0.
///
/// # Safety
///
/// When `len > 0`, `p` points to `len` writable values that nothing else accesses during the
/// call.
pub(crate) unsafe fn arg_slice_mut<'a, T>(
    p: *mut T,
    len: usize,
    name: &str,
) -> Result<&'a mut [T], Failure> {
    if len == 0 {
        return Ok(&mut []);
    }
    check_array(p.cast_const(), len, name)?;
    // SAFETY: as in `arg_slice`, with exclusive access promised by the caller.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

/// An output pointer: not NULL, aligned.
pub(crate) fn arg_out<T>(p: *mut T, name: &str) -> Result<*mut T, Failure> {
    if p.is_null() {
        return Err(Failure::null(name));
    }
    check_aligned(p.cast_const(), name)?;
    Ok(p)
}

/// A UTF-8 string from a NUL-terminated C string.
///
/// # Safety
///
/// `p` is NULL or a NUL-terminated string that stays valid for `'a`.
pub(crate) unsafe fn arg_str<'a>(p: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::null(name));
    }
    // SAFETY: non-NULL; NUL termination is the caller's promise.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map_err(|e| {
        Failure::new(
            pm_status::PM_STATUS_INVALID_UTF8,
            format!(
                "{name} is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// An optional UTF-8 string: NULL gives `None`.
///
/// # Safety
///
/// As [`arg_str`].
pub(crate) unsafe fn arg_opt_str<'a>(
    p: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, Failure> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded.
        unsafe { arg_str(p, name) }.map(Some)
    }
}

fn check_aligned<T>(p: *const T, name: &str) -> Result<(), Failure> {
    if !p.is_aligned() {
        return Err(Failure::new(
            pm_status::PM_STATUS_INVALID_ARGUMENT,
            format!(
                "{name} is not aligned to {} bytes",
                std::mem::align_of::<T>()
            ),
        ));
    }
    Ok(())
}

fn check_array<T>(p: *const T, len: usize, name: &str) -> Result<(), Failure> {
    if p.is_null() {
        return Err(Failure::null(name));
    }
    check_aligned(p, name)?;
    let too_large = len
        .checked_mul(std::mem::size_of::<T>())
        .is_none_or(|bytes| bytes > isize::MAX as usize);
    if too_large {
        return Err(Failure::new(
            pm_status::PM_STATUS_INVALID_ARGUMENT,
            format!("{name} holds {len} values, more than memory can address"),
        ));
    }
    Ok(())
}

/// Panic injection for the tests of the guard: only in `cargo test` builds of this crate, never
/// in the library C links.
#[cfg(test)]
pub(crate) mod inject {
    use std::cell::Cell;

    thread_local! {
        static ARMED: Cell<bool> = const { Cell::new(false) };
    }

    /// Makes the next entry point called on this thread panic inside its guard.
    pub(crate) fn arm() {
        ARMED.with(|a| a.set(true));
    }

    pub(crate) fn maybe_panic() {
        if ARMED.with(|a| a.replace(false)) {
            panic!("injected by the test");
        }
    }
}

#[cfg(not(test))]
mod inject {
    #[inline(always)]
    pub(crate) fn maybe_panic() {}
}
