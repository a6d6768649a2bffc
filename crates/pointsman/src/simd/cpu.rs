//! The CPU's vector units, detected once for every kernel of the crate, and the one override.
//!
//! Every run-time choice of a kernel — the routers' dot products and quadratic forms, the int8
//! prefilter of kNN, the embedder's matrix products — reads [`features`]. The first call detects
//! the CPU and reads `POINTSMAN_SIMD`:
//!
//! | `POINTSMAN_SIMD` | kernels used |
//! |---|---|
//! | unset, empty or `native` | everything the CPU has (AVX-512 BF16 and VNNI, AVX2 + FMA) |
//! | `avx2` | AVX2 + FMA at most: no AVX-512 kernel (how an AVX2-only machine runs) |
//! | `portable` | none: the portable code everywhere |
//!
//! Any other value is refused at that first call with a warning in the log, and the CPU's own
//! features are used. The routing kernels give bit-identical results on every path (see
//! [`super`]); the embedder's agree within its tested tolerance.
//!
//! # Example
//!
//! ```
//! let f = pointsman::simd::cpu::features();
//! // AVX-512 kernels are only used on top of AVX2.
//! assert!(!f.avx512bf16 || f.avx2);
//! println!("{}", pointsman::simd::cpu::describe());
//! ```

use std::sync::OnceLock;

/// The environment variable that caps the kernels used.
pub const OVERRIDE_VAR: &str = "POINTSMAN_SIMD";

/// The vector features the kernels may use: what the CPU has, capped by `POINTSMAN_SIMD`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// AVX2 (256-bit integer and float vectors).
    pub avx2: bool,
    /// Fused multiply-add (with AVX2).
    pub fma: bool,
    /// AVX-512 foundation.
    pub avx512f: bool,
    /// AVX-512 BF16 (`vdpbf16ps`).
    pub avx512bf16: bool,
    /// AVX-512 VNNI (`vpdpbusd`).
    pub avx512vnni: bool,
}

/// What a value of `POINTSMAN_SIMD` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cap {
    Native,
    Avx2,
    Portable,
}

impl Cap {
    fn parse(v: Option<&str>) -> Result<Cap, String> {
        match v.map(str::trim) {
            None | Some("") | Some("native") => Ok(Cap::Native),
            Some("avx2") => Ok(Cap::Avx2),
            Some("portable") => Ok(Cap::Portable),
            Some(other) => Err(format!(
                "{OVERRIDE_VAR}={other:?} is not one of native, avx2, portable: ignored"
            )),
        }
    }

    fn apply(self, f: Features) -> Features {
        match self {
            Cap::Native => f,
            Cap::Avx2 => Features {
                avx2: f.avx2,
                fma: f.fma,
                ..Features::default()
            },
            Cap::Portable => Features::default(),
        }
    }
}

/// What the CPU has, whatever the override (for tests that compare every kernel the CPU can
/// run).
pub fn hardware() -> Features {
    static HARDWARE: OnceLock<Features> = OnceLock::new();
    *HARDWARE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2");
            let avx512f = avx2 && is_x86_feature_detected!("avx512f");
            Features {
                avx2,
                fma: avx2 && is_x86_feature_detected!("fma"),
                avx512f,
                avx512bf16: avx512f && is_x86_feature_detected!("avx512bf16"),
                avx512vnni: avx512f && is_x86_feature_detected!("avx512vnni"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Features::default()
        }
    })
}

/// The features the kernels use: [`hardware`] capped by `POINTSMAN_SIMD`, decided once.
pub fn features() -> Features {
    static FEATURES: OnceLock<Features> = OnceLock::new();
    *FEATURES.get_or_init(|| {
        let var = std::env::var(OVERRIDE_VAR).ok();
        let cap = Cap::parse(var.as_deref()).unwrap_or_else(|warning| {
            tracing::warn!("{warning}");
            Cap::Native
        });
        cap.apply(hardware())
    })
}

/// The features in use, for benchmark reports: `"avx512f avx512bf16 avx512vnni avx2 fma"`, or
/// `"portable"`.
pub fn describe() -> String {
    let f = features();
    let names: Vec<&str> = [
        (f.avx512f, "avx512f"),
        (f.avx512bf16, "avx512bf16"),
        (f.avx512vnni, "avx512vnni"),
        (f.avx2, "avx2"),
        (f.fma, "fma"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if names.is_empty() {
        "portable".into()
    } else {
        names.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_override_caps_what_the_cpu_has() {
        let all = Features {
            avx2: true,
            fma: true,
            avx512f: true,
            avx512bf16: true,
            avx512vnni: true,
        };
        for v in [None, Some(""), Some("native"), Some(" native ")] {
            assert_eq!(Cap::parse(v).unwrap().apply(all), all);
        }
        let avx2 = Cap::parse(Some("avx2")).unwrap().apply(all);
        assert!(avx2.avx2 && avx2.fma && !avx2.avx512f && !avx2.avx512bf16 && !avx2.avx512vnni);
        assert_eq!(
            Cap::parse(Some("portable")).unwrap().apply(all),
            Features::default()
        );
        let e = Cap::parse(Some("avx9000")).unwrap_err();
        assert!(e.contains("POINTSMAN_SIMD=\"avx9000\""), "{e}");
        // A cap never adds what the CPU lacks.
        assert_eq!(Cap::Avx2.apply(Features::default()), Features::default());
        let f = features();
        let h = hardware();
        assert!((!f.avx2 || h.avx2) && (!f.avx512bf16 || h.avx512bf16));
    }
}
