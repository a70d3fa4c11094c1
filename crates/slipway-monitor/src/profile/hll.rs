//! HyperLogLog distinct counts (Flajolet et al. 2007) with 2^p one-byte registers.
//!
//! The hash is our own and fixed (FNV-1a over the bytes, then MurmurHash3's 64-bit finaliser,
//! with a fixed seed), so a sketch means the same thing in every process and every version:
//! profiles written today merge with profiles written later. Merging takes the register-wise
//! maximum, which is exactly associative and commutative: the merge of parts *is* the sketch
//! of the whole, register for register.
//!
//! Error: the relative standard error of the estimate is 1.04 / sqrt(2^p) (1.6% at the default
//! p = 12); below 2.5 · 2^p the small-range correction (linear counting) applies.

use serde::{Deserialize, Serialize};

/// Default precision: 4096 registers, 4 KiB, standard error 1.625%.
pub const DEFAULT_PRECISION: u8 = 12;

const SEED: u64 = 0x5150_7761_7953_4c50;

/// MurmurHash3's fmix64: a bijection that spreads every input bit over the output.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The hash of a string value.
pub fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ SEED;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    fmix64(h)
}

/// The hash of a number; -0.0 and 0.0 are one value.
pub fn hash_f64(v: f64) -> u64 {
    let v = if v == 0.0 { 0.0 } else { v };
    fmix64(v.to_bits() ^ SEED)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "HllWire", into = "HllWire")]
pub struct HyperLogLog {
    precision: u8,
    registers: Vec<u8>,
}

/// Serialised form: the registers as one hex string (two characters per register).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HllWire {
    precision: u8,
    registers: String,
}

impl From<HyperLogLog> for HllWire {
    fn from(h: HyperLogLog) -> HllWire {
        let mut s = String::with_capacity(h.registers.len() * 2);
        for r in &h.registers {
            s.push_str(&format!("{r:02x}"));
        }
        HllWire { precision: h.precision, registers: s }
    }
}

impl TryFrom<HllWire> for HyperLogLog {
    type Error = String;
    fn try_from(w: HllWire) -> Result<HyperLogLog, String> {
        if !(4..=18).contains(&w.precision) {
            return Err(format!("hyperloglog precision {} is outside 4..=18", w.precision));
        }
        let m = 1usize << w.precision;
        if w.registers.len() != 2 * m || !w.registers.is_ascii() {
            return Err(format!("hyperloglog needs {m} registers as {} hex digits", 2 * m));
        }
        let registers = (0..m)
            .map(|i| u8::from_str_radix(&w.registers[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|e| format!("bad hyperloglog register: {e}"))?;
        if registers.iter().any(|&r| u32::from(r) > 65 - u32::from(w.precision)) {
            return Err("hyperloglog register out of range".into());
        }
        Ok(HyperLogLog { precision: w.precision, registers })
    }
}

impl Default for HyperLogLog {
    fn default() -> Self {
        HyperLogLog::new(DEFAULT_PRECISION)
    }
}

impl HyperLogLog {
    /// A sketch with 2^precision registers (precision is clamped to 4..=18).
    pub fn new(precision: u8) -> HyperLogLog {
        let precision = precision.clamp(4, 18);
        HyperLogLog { precision, registers: vec![0; 1 << precision] }
    }

    pub fn precision(&self) -> u8 {
        self.precision
    }

    /// The relative standard error of [`HyperLogLog::estimate`]: 1.04 / sqrt(m).
    pub fn standard_error(&self) -> f64 {
        1.04 / (self.registers.len() as f64).sqrt()
    }

    pub fn insert_hash(&mut self, h: u64) {
        let p = u32::from(self.precision);
        let index = (h >> (64 - p)) as usize;
        // The rank of the first 1 bit in the remaining 64 - p bits (64 - p + 1 if none).
        let rest = h << p;
        let rank = if rest == 0 { 64 - p + 1 } else { rest.leading_zeros() + 1 };
        let r = &mut self.registers[index];
        *r = (*r).max(rank as u8);
    }

    /// Register-wise maximum; refused when the precisions differ.
    pub fn merge(&mut self, other: &HyperLogLog) -> Result<(), String> {
        if self.precision != other.precision {
            return Err(format!(
                "cannot merge hyperloglog sketches of precision {} and {}",
                self.precision, other.precision
            ));
        }
        for (a, b) in self.registers.iter_mut().zip(&other.registers) {
            *a = (*a).max(*b);
        }
        Ok(())
    }

    /// The estimated number of distinct values.
    pub fn estimate(&self) -> f64 {
        let m = self.registers.len() as f64;
        let alpha = match self.registers.len() {
            16 => 0.673,
            32 => 0.697,
            64 => 0.709,
            _ => 0.7213 / (1.0 + 1.079 / m),
        };
        let sum: f64 = self.registers.iter().map(|&r| (-f64::from(r)).exp2()).sum();
        let raw = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        if raw <= 2.5 * m && zeros > 0 { m * (m / zeros as f64).ln() } else { raw }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_stay_within_four_standard_errors() {
        // Deterministic hashing: these numbers are the same on every run.
        for &n in &[10u64, 100, 1_000, 5_000, 10_000, 30_000, 100_000, 1_000_000] {
            let mut h = HyperLogLog::default();
            for i in 0..n {
                h.insert_hash(hash_f64(i as f64 * 0.37 + 1.0));
            }
            let rel = (h.estimate() - n as f64).abs() / n as f64;
            assert!(rel <= 4.0 * h.standard_error(), "n={n}: relative error {rel}");
        }
    }

    #[test]
    fn merge_of_parts_is_the_sketch_of_the_whole() {
        let (mut whole, mut a, mut b) = (HyperLogLog::default(), HyperLogLog::default(), HyperLogLog::default());
        for i in 0..50_000u32 {
            let h = hash_str(&format!("user-{i}"));
            whole.insert_hash(h);
            if i % 3 == 0 { a.insert_hash(h) } else { b.insert_hash(h) }
        }
        let mut ab = a.clone();
        ab.merge(&b).unwrap();
        let mut ba = b.clone();
        ba.merge(&a).unwrap();
        assert_eq!(ab, whole);
        assert_eq!(ba, whole);
        assert!(HyperLogLog::new(10).merge(&whole).is_err());
    }

    #[test]
    fn round_trips_through_json_and_refuses_bad_registers() {
        let mut h = HyperLogLog::new(6);
        for i in 0..100 {
            h.insert_hash(hash_f64(f64::from(i)));
        }
        let text = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<HyperLogLog>(&text).unwrap(), h);
        assert!(serde_json::from_str::<HyperLogLog>(r#"{"precision":6,"registers":"00"}"#).is_err());
        assert!(serde_json::from_str::<HyperLogLog>(r#"{"precision":2,"registers":"00"}"#).is_err());
        assert_eq!(hash_f64(0.0), hash_f64(-0.0));
    }
}
