//! `min` and `max` of two `f64` that compile to a comparison in WebAssembly too.
//!
//! Rust's `f64::min` ignores a NaN operand, while WebAssembly's `f64.min` instruction propagates
//! it. So for `wasm32` targets rustc cannot use the instruction and calls `fmin` out of line:
//! one function call per use, where native code gets a couple of inlined instructions. In
//! avg_quartier's reading path those two calls were 11 % of the time in WASM (see
//! BENCHMARKS.md). These functions give the same answers as `f64::min`/`f64::max`, NaN included,
//! as plain comparisons that inline on every target.

/// The smaller of `a` and `b`; if one of them is NaN, the other (as `f64::min`).
#[inline]
pub fn min(a: f64, b: f64) -> f64 {
    if b < a || a.is_nan() { b } else { a }
}

/// The larger of `a` and `b`; if one of them is NaN, the other (as `f64::max`).
#[inline]
pub fn max(a: f64, b: f64) -> f64 {
    if b > a || a.is_nan() { b } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn they_agree_with_the_standard_library_nan_and_infinities_included() {
        let values = [f64::NAN, f64::NEG_INFINITY, -2.5, -0.0, 0.0, 1.0, 7.25, f64::INFINITY];
        type Pick = fn(f64, f64) -> f64;
        let pairs: [(&str, Pick, Pick); 2] = [("min", min, f64::min), ("max", max, f64::max)];
        for (name, ours, std) in pairs {
            for a in values {
                for b in values {
                    let (got, want) = (ours(a, b), std(a, b));
                    assert!(
                        got == want || (got.is_nan() && want.is_nan()),
                        "{name}({a}, {b}): {got} against {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_nan_is_skipped_whichever_side_it_is_on() {
        assert_eq!(min(f64::NAN, 3.0), 3.0);
        assert_eq!(min(3.0, f64::NAN), 3.0);
        assert_eq!(max(f64::NAN, 3.0), 3.0);
        assert_eq!(max(3.0, f64::NAN), 3.0);
    }
}
