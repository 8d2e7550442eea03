//! The vector instructions this CPU has, for the kernels that come in one version per
//! instruction set (`vexp`'s activations, `packed`'s register tiles).

/// An instruction set a kernel has a version for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Isa {
    Avx512,
    Avx2,
    Plain,
}

impl Isa {
    /// The widest this CPU has (AVX2 counts only with FMA).
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Plain
    }

    /// Every one this CPU can run, the plain one first: the tests check each version.
    pub fn available() -> Vec<Isa> {
        let mut isas = vec![Isa::Plain];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                isas.push(Isa::Avx2);
            }
            if is_x86_feature_detected!("avx512f") {
                isas.push(Isa::Avx512);
            }
        }
        isas
    }
}
