use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::error::{excerpt, TypesError};

/// A Kinesis sequence number. Kinesin derives it from the shard's identity and the record's
/// position, so every replica computes the same number and a number can be validated
/// against the shard it is used with.
///
/// Layout (AWS's, as reverse engineered by kinesalite, so numbers look like AWS's 56-digit
/// ones): a 47-hex-digit (188-bit) value whose hex digits are, most significant first,
/// `2` (version marker), shard_epoch (9), shard_index & 0xF (1), position (16), `00` (2),
/// arrival_secs (9), shard_index (8), `2` (1). The sequence number is its decimal form.
///
/// `shard_epoch` and `arrival_secs` have 36-bit slots (enough until the year 4147); wider
/// values are truncated by [`SequenceNumber::to_decimal`] and so cannot round-trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SequenceNumber {
    /// 36 bits used: the shard's creation time in epoch seconds (controller-assigned,
    /// strictly greater for child shards than for parents).
    pub shard_epoch: u64,
    /// The shard's index (`ShardId.0`).
    pub shard_index: u32,
    /// The record's position within the shard, strictly increasing in the shard.
    pub position: u64,
    /// 36 bits used: record arrival time, epoch seconds.
    pub arrival_secs: u64,
}

/// 192-bit unsigned integer, little-endian 64-bit limbs. Just enough arithmetic for
/// decimal conversion; the 188-bit layout fits with 4 bits to spare.
type U192 = [u64; 3];

/// A field of the layout: bit offset from the least significant bit, and width in bits.
#[derive(Clone, Copy)]
struct Field {
    offset: u32,
    width: u32,
}

const MARKER_LO: Field = Field {
    offset: 0,
    width: 4,
};
const SHARD_INDEX: Field = Field {
    offset: 4,
    width: 32,
};
const ARRIVAL: Field = Field {
    offset: 36,
    width: 36,
};
const RESERVED: Field = Field {
    offset: 72,
    width: 8,
};
const POSITION: Field = Field {
    offset: 80,
    width: 64,
};
const SHARD_NIBBLE: Field = Field {
    offset: 144,
    width: 4,
};
const EPOCH: Field = Field {
    offset: 148,
    width: 36,
};
const MARKER_HI: Field = Field {
    offset: 184,
    width: 4,
};
/// Bits 188..192: must be zero, the layout is only 188 bits wide.
const OVERFLOW: Field = Field {
    offset: 188,
    width: 4,
};

const MARKER: u64 = 2;

/// 2^188 - 1 has 57 decimal digits; anything longer cannot be a valid layout.
const MAX_DIGITS: usize = 57;
/// botocore's wire pattern `0|([1-9]\d{0,128})` caps the length at 129 digits.
const MAX_WIRE_DIGITS: usize = 129;

fn mask(width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

fn put(bits: &mut U192, f: Field, value: u64) {
    let v = value & mask(f.width);
    let limb = (f.offset / 64) as usize;
    let shift = f.offset % 64;
    bits[limb] |= v << shift;
    // A field may straddle two limbs; shift > 0 is implied when it does.
    if shift + f.width > 64 {
        bits[limb + 1] |= v >> (64 - shift);
    }
}

fn get(bits: &U192, f: Field) -> u64 {
    let limb = (f.offset / 64) as usize;
    let shift = f.offset % 64;
    let mut v = bits[limb] >> shift;
    if shift + f.width > 64 {
        v |= bits[limb + 1] << (64 - shift);
    }
    v & mask(f.width)
}

/// Decimal digits to binary; `None` on a non-digit or a value that needs more than 192 bits.
fn from_decimal(digits: &[u8]) -> Option<U192> {
    let mut n: U192 = [0; 3];
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        let mut carry = u128::from(b - b'0');
        for limb in n.iter_mut() {
            let p = u128::from(*limb) * 10 + carry;
            *limb = p as u64; // low 64 bits; the rest carries on
            carry = p >> 64;
        }
        if carry != 0 {
            return None;
        }
    }
    Some(n)
}

fn to_decimal(mut n: U192) -> String {
    // Peel off 19 decimal digits at a time: 10^19 is the largest power of ten in a u64.
    const CHUNK: u128 = 10_000_000_000_000_000_000;
    let mut chunks = Vec::with_capacity(4);
    loop {
        let mut rem: u128 = 0;
        for limb in n.iter_mut().rev() {
            let cur = (rem << 64) | u128::from(*limb);
            *limb = (cur / CHUNK) as u64; // cur < CHUNK * 2^64, so the quotient fits
            rem = cur % CHUNK;
        }
        chunks.push(rem as u64);
        if n == [0; 3] {
            break;
        }
    }
    let mut out = String::with_capacity(chunks.len() * 19);
    let mut it = chunks.iter().rev();
    if let Some(top) = it.next() {
        out.push_str(&top.to_string());
    }
    for c in it {
        out.push_str(&format!("{c:019}"));
    }
    out
}

impl SequenceNumber {
    /// Largest value `shard_epoch` and `arrival_secs` can hold (36 bits).
    pub const MAX_SECS: u64 = (1 << 36) - 1;

    fn to_bits(self) -> U192 {
        let mut bits: U192 = [0; 3];
        put(&mut bits, MARKER_HI, MARKER);
        put(&mut bits, EPOCH, self.shard_epoch);
        put(&mut bits, SHARD_NIBBLE, u64::from(self.shard_index));
        put(&mut bits, POSITION, self.position);
        put(&mut bits, ARRIVAL, self.arrival_secs);
        put(&mut bits, SHARD_INDEX, u64::from(self.shard_index));
        put(&mut bits, MARKER_LO, MARKER);
        bits
    }

    fn from_bits(bits: &U192) -> Option<SequenceNumber> {
        let well_formed = get(bits, OVERFLOW) == 0
            && get(bits, MARKER_HI) == MARKER
            && get(bits, MARKER_LO) == MARKER
            && get(bits, RESERVED) == 0;
        if !well_formed {
            return None;
        }
        let shard_index = u32::try_from(get(bits, SHARD_INDEX)).ok()?;
        // The nibble copy is what lets a number be checked against the shard it names.
        if get(bits, SHARD_NIBBLE) != u64::from(shard_index & 0xF) {
            return None;
        }
        Some(SequenceNumber {
            shard_epoch: get(bits, EPOCH),
            shard_index,
            position: get(bits, POSITION),
            arrival_secs: get(bits, ARRIVAL),
        })
    }

    pub fn to_decimal(&self) -> String {
        to_decimal(self.to_bits())
    }

    pub fn parse(s: &str) -> Result<SequenceNumber, TypesError> {
        let invalid = || TypesError::InvalidSequenceNumber(excerpt(s));
        let digits = s.as_bytes();
        // A leading zero is either "0" (never a valid layout) or breaks the wire pattern.
        if digits.is_empty() || digits.len() > MAX_WIRE_DIGITS || digits[0] == b'0' {
            return Err(invalid());
        }
        if digits.len() > MAX_DIGITS {
            return Err(invalid());
        }
        let bits = from_decimal(digits).ok_or_else(invalid)?;
        SequenceNumber::from_bits(&bits).ok_or_else(invalid)
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_decimal())
    }
}

impl FromStr for SequenceNumber {
    type Err = TypesError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SequenceNumber::parse(s)
    }
}

impl Ord for SequenceNumber {
    /// Numeric order of the encoded value, i.e. by (shard_epoch, shard_index & 0xF,
    /// position, arrival_secs, shard_index). The raw-field tie-break only matters for
    /// out-of-range epochs/arrivals and keeps `Ord` consistent with the derived `Eq`.
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.to_bits(), other.to_bits());
        a.iter()
            .rev()
            .cmp(b.iter().rev())
            .then_with(|| self.shard_epoch.cmp(&other.shard_epoch))
            .then_with(|| self.arrival_secs.cmp(&other.arrival_secs))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AWS_SAMPLE: &str = "49590338271490256608559692538361571095921575989136588898";

    fn sn(shard_epoch: u64, shard_index: u32, position: u64, arrival_secs: u64) -> SequenceNumber {
        SequenceNumber {
            shard_epoch,
            shard_index,
            position,
            arrival_secs,
        }
    }

    #[test]
    fn decodes_the_aws_sample() {
        let bits = from_decimal(AWS_SAMPLE.as_bytes()).unwrap();
        assert_eq!(get(&bits, OVERFLOW), 0);
        assert_eq!(get(&bits, MARKER_HI), 2);
        assert_eq!(get(&bits, MARKER_LO), 2);
        assert_eq!(get(&bits, SHARD_NIBBLE), 6);
        assert_eq!(get(&bits, SHARD_INDEX), 6);

        let s = SequenceNumber::parse(AWS_SAMPLE).unwrap();
        assert_eq!(s.shard_index, 6);
        assert_eq!(s.shard_epoch, 1_542_776_258); // 2018-11-21
        assert_eq!(s.arrival_secs, 1_545_084_650); // 2018-12-17
        assert_eq!(s.position, 0x6764_8a17);
        assert_eq!(s.to_decimal(), AWS_SAMPLE);
    }

    #[test]
    fn decimal_conversion_round_trips_raw_values() {
        let samples: [U192; 6] = [
            [0, 0, 0],
            [1, 0, 0],
            [u64::MAX, 0, 0],
            [0, 1, 0],
            [u64::MAX, u64::MAX, u64::MAX],
            [0x1234_5678_9abc_def0, 0x0fed_cba9_8765_4321, 0x0aaa_5555],
        ];
        for n in samples {
            let d = to_decimal(n);
            assert_eq!(from_decimal(d.as_bytes()), Some(n), "{d}");
        }
        assert_eq!(to_decimal([0, 0, 0]), "0");
        assert_eq!(
            to_decimal([10_000_000_000_000_000_000, 0, 0]),
            "10000000000000000000"
        );
        assert_eq!(
            to_decimal([u64::MAX; 3]),
            "6277101735386680763835789423207666416102355444464034512895"
        );
        // 2^192 does not fit.
        assert_eq!(
            from_decimal(b"6277101735386680763835789423207666416102355444464034512896"),
            None
        );
    }

    #[test]
    fn round_trips_many_values() {
        let epochs = [0, 1, 1_542_776_258, 1_700_000_000, SequenceNumber::MAX_SECS];
        let shards = [0, 1, 6, 15, 16, 17, 12345, u32::MAX - 1, u32::MAX];
        let positions = [0, 1, 0x6764_8a17, 1 << 63, u64::MAX - 1, u64::MAX];
        let arrivals = [0, 1_545_084_650, SequenceNumber::MAX_SECS];
        for &e in &epochs {
            for &i in &shards {
                for &p in &positions {
                    for &a in &arrivals {
                        let s = sn(e, i, p, a);
                        let d = s.to_decimal();
                        assert_eq!(SequenceNumber::parse(&d), Ok(s), "{s:?} -> {d}");
                        assert_eq!(d.parse::<SequenceNumber>(), Ok(s));
                        assert_eq!(s.to_string(), d);
                    }
                }
            }
        }
    }

    #[test]
    fn every_valid_number_has_56_digits() {
        // The fixed '2' in the top nibble pins the magnitude, so decimal strings of valid
        // numbers compare the same way the numbers do.
        assert_eq!(sn(0, 0, 0, 0).to_decimal().len(), 56);
        let max = sn(
            SequenceNumber::MAX_SECS,
            u32::MAX,
            u64::MAX,
            SequenceNumber::MAX_SECS,
        );
        assert_eq!(max.to_decimal().len(), 56);
    }

    #[test]
    fn orders_by_position_within_a_shard() {
        let positions = [0u64, 1, 2, 255, 256, 1 << 32, (1 << 63) + 1, u64::MAX];
        for w in positions.windows(2) {
            // A later record may have an earlier arrival (clock skew between leaders).
            let a = sn(1_700_000_000, 3, w[0], 1_700_000_999);
            let b = sn(1_700_000_000, 3, w[1], 1_700_000_000);
            assert!(a < b, "{a:?} !< {b:?}");
            assert!(a.to_decimal() < b.to_decimal());
            assert_eq!(a.to_decimal().len(), b.to_decimal().len());
        }
    }

    #[test]
    fn child_shard_numbers_exceed_parent_numbers() {
        let parent = sn(1_700_000_000, 0, u64::MAX, SequenceNumber::MAX_SECS);
        let child = sn(1_700_000_001, 1, 0, 0);
        assert!(parent < child);
        let parent = sn(1_700_000_000, 15, u64::MAX, SequenceNumber::MAX_SECS);
        let child = sn(1_700_000_001, 16, 0, 0);
        assert!(parent < child);
    }

    #[test]
    fn ord_is_consistent_with_eq() {
        let a = sn(5, 7, 9, 11);
        assert_eq!(a.cmp(&a), Ordering::Equal);
        // Out-of-range epochs encode identically but are not equal, so Ord must not say Equal.
        let wide = sn(5 + (1 << 36), 7, 9, 11);
        assert_eq!(a.to_decimal(), wide.to_decimal());
        assert_ne!(a, wide);
        assert_ne!(a.cmp(&wide), Ordering::Equal);
    }

    fn bits_to_string(f: impl FnOnce(&mut U192)) -> String {
        let mut bits = sn(1_700_000_000, 6, 42, 1_700_000_100).to_bits();
        f(&mut bits);
        to_decimal(bits)
    }

    #[test]
    fn rejects_malformed_strings() {
        let too_wide_wire = "4".repeat(130);
        let with_leading_zero = format!("0{AWS_SAMPLE}");
        for bad in [
            "",
            "0",
            "00",
            "abc",
            "+49590338271490256608559692538361571095921575989136588898",
            "-49590338271490256608559692538361571095921575989136588898",
            " 49590338271490256608559692538361571095921575989136588898",
            "49590338271490256608559692538361571095921575989136588898 ",
            "4959033827149025660855969253836157109592157598913658889x",
            "49590338271490256608559692538361571095921575989136588898.0",
            "١٢٣",
            with_leading_zero.as_str(),
            too_wide_wire.as_str(),
            "1",
            "12345",
        ] {
            assert!(
                matches!(
                    SequenceNumber::parse(bad),
                    Err(TypesError::InvalidSequenceNumber(_))
                ),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn rejects_values_that_are_not_a_kinesin_layout() {
        let cases = [
            // >= 2^188
            bits_to_string(|b| b[2] |= 1 << (188 - 128)),
            bits_to_string(|b| b[2] |= 1 << 63),
            // wrong version marker at either end
            bits_to_string(|b| b[2] ^= 1 << (184 - 128)),
            bits_to_string(|b| b[0] ^= 1),
            // reserved "00" byte set
            bits_to_string(|b| b[1] |= 1 << (72 - 64)),
            // shard index nibble disagrees with the full shard index
            bits_to_string(|b| b[2] ^= 1 << (144 - 128)),
            bits_to_string(|b| b[0] ^= 1 << 4),
        ];
        for bad in &cases {
            assert!(
                matches!(
                    SequenceNumber::parse(bad),
                    Err(TypesError::InvalidSequenceNumber(_))
                ),
                "{bad} should be rejected"
            );
        }
        // 2^188 written out, and longer runs of digits.
        assert!(SequenceNumber::parse(&to_decimal([0, 0, 1 << 60])).is_err());
        assert!(SequenceNumber::parse(&"9".repeat(58)).is_err());
        assert!(SequenceNumber::parse(&"9".repeat(129)).is_err());
        // The untouched value is fine, so the rejections above are due to the edits.
        assert!(SequenceNumber::parse(&bits_to_string(|_| {})).is_ok());
    }
}
