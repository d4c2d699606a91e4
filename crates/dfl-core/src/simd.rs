//! Hot inner loops compiled twice: for the baseline CPU and, on x86-64, with AVX2 + FMA,
//! chosen at run time ([`multiversion!`](crate::multiversion)). The loops are plain Rust
//! written so the compiler vectorises them; `FMA = true` turns `a + w * x` into fused
//! multiply-adds. Release builds target the baseline x86-64 (SSE2) so that they run on every
//! CPU; without this, every loop of ours would use 128-bit vectors on AVX2 machines.
//!
//! The portable build is what every other target runs; each user tests that both agree.

/// `acc + w * x`, fused when the FMA build is compiled.
#[inline(always)]
pub fn madd<const FMA: bool>(acc: f32, w: f32, x: f32) -> f32 {
    if FMA { x.mul_add(w, acc) } else { acc + w * x }
}

/// Whether the AVX2 + FMA builds may run on this CPU.
#[inline]
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `$name(args)` that runs `$body_fn::<true>(args)` compiled for AVX2 + FMA when the
/// CPU has them, else `$body_fn::<false>(args)` for the baseline. The body must be
/// `#[inline(always)]` so that it is compiled inside the AVX2 function.
#[macro_export]
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident / $avx:ident => $body:ident ($($arg:ident : $ty:ty),* $(,)?)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        $(#[$meta])*
        fn $avx($($arg: $ty),*) {
            $body::<true>($($arg),*)
        }

        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if $crate::simd::has_avx2_fma() {
                // SAFETY: the CPU supports AVX2 and FMA, checked just above.
                return unsafe { $avx($($arg),*) };
            }
            $body::<false>($($arg),*)
        }
    };
}
