//! Checksummed records, for disk files and network frames, and the postcard
//! helpers every other module uses.
//!
//! A record is `[u32 LE payload length][u32 LE crc32 of the 4 length bytes
//! followed by the payload][payload]`. The checksum covers the length, so a
//! flipped bit anywhere in a complete record is detected.
//!
//! [`decode_records`] reads a whole file and classifies how it ends:
//! - [`Tail::Clean`]: every byte belongs to a valid record;
//! - [`Tail::Torn`]: the file ends inside what can only be the prefix of one
//!   last record (a write cut short by a power loss: never acknowledged);
//! - [`Tail::Corrupt`]: a complete record fails its checksum, a length is
//!   impossible, or a record claims to run past the end of the data while
//!   either flipping one bit of its length makes it a complete valid record
//!   or a valid record follows it (a damaged length, not a torn write).
//!   Any single flipped bit in a record stream is therefore reported as
//!   `Corrupt`, never as `Torn` or `Clean`.
//!
//! For network streams use [`next_record`], which reports an incomplete
//! frame as `Ok(None)` instead of scanning for corruption.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Bytes of a record header (length + checksum).
pub const RECORD_HEADER_LEN: usize = 8;

/// The largest payload a record may carry; a larger length is corruption.
pub const MAX_RECORD_LEN: usize = 64 << 20;

/// Errors of the postcard helpers and of record framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode value: {0}")]
    Encode(String),
    #[error("cannot decode value: {0}")]
    Decode(String),
    #[error("{0} unexpected trailing bytes after the decoded value")]
    TrailingBytes(usize),
    #[error("record payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("unsupported format version {found} (this build reads version {expected})")]
    Version { found: u8, expected: u8 },
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// How a record stream ends (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// Every byte belongs to a valid record.
    Clean,
    /// The stream ends inside the record starting at `offset` (a torn,
    /// unsynced write).
    Torn { offset: u64 },
    /// The record at `offset` is damaged; nothing from `offset` on can be
    /// trusted.
    Corrupt { offset: u64, detail: String },
}

fn checksum(len_bytes: &[u8; 4], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len_bytes);
    h.update(payload);
    h.finalize()
}

/// Appends one framed record to `out`.
///
/// # Panics
/// If `payload` is longer than [`MAX_RECORD_LEN`] (such a record could never
/// be read back); check with [`check_record_len`] first.
pub fn encode_record(payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        payload.len() <= MAX_RECORD_LEN,
        "record payload of {} bytes exceeds MAX_RECORD_LEN",
        payload.len()
    );
    let len = (payload.len() as u32).to_le_bytes();
    out.reserve(RECORD_HEADER_LEN + payload.len());
    out.extend_from_slice(&len);
    out.extend_from_slice(&checksum(&len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// `Err(TooLarge)` if a payload of `len` bytes cannot be framed.
pub fn check_record_len(len: usize) -> Result<(), CodecError> {
    if len > MAX_RECORD_LEN {
        Err(CodecError::TooLarge {
            len,
            max: MAX_RECORD_LEN,
        })
    } else {
        Ok(())
    }
}

/// What a complete header + payload at the start of `buf` looks like.
enum Probe<'a> {
    /// A valid record: payload and total framed length.
    Valid(&'a [u8], usize),
    /// Fewer bytes than the header or the claimed payload.
    Incomplete,
    /// Impossible length or bad checksum.
    Bad(String),
}

fn probe(buf: &[u8]) -> Probe<'_> {
    if buf.len() < RECORD_HEADER_LEN {
        return Probe::Incomplete;
    }
    let len_bytes: [u8; 4] = buf[0..4].try_into().expect("4 bytes");
    let len = u32::from_le_bytes(len_bytes) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if len > MAX_RECORD_LEN {
        return Probe::Bad(format!(
            "record length {len} exceeds the limit of {MAX_RECORD_LEN}"
        ));
    }
    let end = RECORD_HEADER_LEN + len;
    if buf.len() < end {
        return Probe::Incomplete;
    }
    let payload = &buf[RECORD_HEADER_LEN..end];
    let actual = checksum(&len_bytes, payload);
    if actual != crc {
        return Probe::Bad(format!(
            "checksum mismatch on a {len}-byte record (stored {crc:#010x}, computed {actual:#010x})"
        ));
    }
    Probe::Valid(payload, end)
}

/// Splits a record stream into its valid records and says how it ends.
/// Never panics, whatever `buf` holds.
pub fn decode_records(buf: &[u8]) -> (Vec<&[u8]>, Tail) {
    let mut records = Vec::new();
    let mut pos = 0usize;
    loop {
        if pos == buf.len() {
            return (records, Tail::Clean);
        }
        let rest = &buf[pos..];
        match probe(rest) {
            Probe::Valid(payload, used) => {
                records.push(payload);
                pos += used;
            }
            Probe::Bad(detail) => {
                // A zero-filled tail is what some file systems leave after a
                // torn append (the size was extended, the data never landed).
                // A single flipped bit cannot produce it from a valid record.
                if rest.iter().all(|&b| b == 0) {
                    return (records, Tail::Torn { offset: pos as u64 });
                }
                return (
                    records,
                    Tail::Corrupt {
                        offset: pos as u64,
                        detail,
                    },
                );
            }
            Probe::Incomplete => {
                // A torn write leaves a prefix of the last record. If a valid
                // record starts anywhere after this header, the claimed length
                // is wrong (a flipped bit) and the data after it was written
                // completely: that is corruption, not a torn tail.
                if flipped_length_fits(rest) {
                    return (
                        records,
                        Tail::Corrupt {
                            offset: pos as u64,
                            detail: "record length has a flipped bit: it claims to extend \
                                     past the end of the data"
                                .into(),
                        },
                    );
                }
                if let Some(at) = find_valid_record(rest, 1) {
                    return (
                        records,
                        Tail::Corrupt {
                            offset: pos as u64,
                            detail: format!(
                                "record claims to extend past the end of the data, \
                                 but a valid record follows at offset {}",
                                pos + at
                            ),
                        },
                    );
                }
                return (records, Tail::Torn { offset: pos as u64 });
            }
        }
    }
}

/// The first offset `>= from` in `buf` where a complete valid record starts.
///
/// The scan checksums at most [`SCAN_BUDGET`] bytes, so a long torn tail of
/// adversarial data cannot make opening quadratic; past the budget the tail
/// is taken as torn.
fn find_valid_record(buf: &[u8], from: usize) -> Option<usize> {
    let mut budget = SCAN_BUDGET;
    for at in from..buf.len().saturating_sub(RECORD_HEADER_LEN - 1) {
        let rest = &buf[at..];
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        if len > MAX_RECORD_LEN || RECORD_HEADER_LEN + len > rest.len() {
            continue;
        }
        if budget < len {
            return None;
        }
        budget -= len;
        if matches!(probe(rest), Probe::Valid(..)) {
            return Some(at);
        }
    }
    None
}

/// Checksum work allowed when scanning a tail for a later valid record.
const SCAN_BUDGET: usize = 16 << 20;

/// Would the record at the start of `buf` be complete and valid with one bit
/// of its length flipped back? (The checksum was computed over the true
/// length, so the true length validates.)
fn flipped_length_fits(buf: &[u8]) -> bool {
    if buf.len() < RECORD_HEADER_LEN {
        return false;
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes"));
    (0..32).any(|bit| {
        let candidate = len ^ (1 << bit);
        let end = RECORD_HEADER_LEN + candidate as usize;
        if candidate as usize > MAX_RECORD_LEN || end > buf.len() {
            return false;
        }
        let len_bytes = candidate.to_le_bytes();
        let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
        checksum(&len_bytes, &buf[RECORD_HEADER_LEN..end]) == crc
    })
}

/// Streaming decode for network frames: `Ok(Some((payload, consumed)))` for a
/// complete valid record at the start of `buf`, `Ok(None)` if more bytes are
/// needed, `Err(Corrupt)` if the frame is damaged (drop the connection).
pub fn next_record(buf: &[u8]) -> Result<Option<(&[u8], usize)>, CodecError> {
    match probe(buf) {
        Probe::Valid(payload, used) => Ok(Some((payload, used))),
        Probe::Incomplete => Ok(None),
        Probe::Bad(detail) => Err(CodecError::Corrupt(detail)),
    }
}

/// Serialises `value` with postcard.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    postcard::to_allocvec(value).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Deserialises a postcard value that must use every byte of `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| CodecError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

/// Frames a postcard-encoded value as one record appended to `out`.
pub fn encode_framed<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let payload = encode(value)?;
    check_record_len(payload.len())?;
    encode_record(&payload, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stream(payloads: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode_record(p, &mut out);
        }
        out
    }

    #[test]
    fn empty_and_clean() {
        assert_eq!(decode_records(&[]), (vec![], Tail::Clean));
        let buf = stream(&[vec![], b"abc".to_vec()]);
        let (recs, tail) = decode_records(&buf);
        assert_eq!(recs, vec![&b""[..], &b"abc"[..]]);
        assert_eq!(tail, Tail::Clean);
    }

    #[test]
    fn torn_tail_is_reported_at_the_record_start() {
        let buf = stream(&[b"hello".to_vec(), b"world!".to_vec()]);
        let first = RECORD_HEADER_LEN + 5;
        for cut in first + 1..buf.len() {
            let (recs, tail) = decode_records(&buf[..cut]);
            assert_eq!(recs, vec![&b"hello"[..]]);
            assert_eq!(
                tail,
                Tail::Torn {
                    offset: first as u64
                },
                "cut {cut}"
            );
        }
        let mut zeros = buf[..first].to_vec();
        zeros.extend_from_slice(&[0; 20]);
        assert_eq!(
            decode_records(&zeros).1,
            Tail::Torn {
                offset: first as u64
            }
        );
    }

    #[test]
    fn corrupt_checksum_and_length() {
        let mut buf = stream(&[b"hello".to_vec(), b"world".to_vec()]);
        buf[RECORD_HEADER_LEN + 1] ^= 1;
        let (recs, tail) = decode_records(&buf);
        assert!(recs.is_empty());
        assert!(matches!(tail, Tail::Corrupt { offset: 0, .. }), "{tail:?}");

        let mut big = Vec::new();
        big.extend_from_slice(&((MAX_RECORD_LEN as u32) + 1).to_le_bytes());
        big.extend_from_slice(&[1, 2, 3, 4, 5]);
        assert!(matches!(
            decode_records(&big).1,
            Tail::Corrupt { offset: 0, .. }
        ));
        assert!(next_record(&big).is_err());
    }

    #[test]
    fn flipped_length_making_a_record_look_torn_is_corruption() {
        let mut buf = stream(&[b"hello".to_vec(), b"world".to_vec()]);
        buf[1] ^= 0x10; // length 5 -> 4101: runs past the end
        let (recs, tail) = decode_records(&buf);
        assert!(recs.is_empty());
        assert!(matches!(tail, Tail::Corrupt { offset: 0, .. }), "{tail:?}");
    }

    #[test]
    fn flipped_length_in_the_last_record_is_corruption() {
        let mut buf = stream(&[b"hello".to_vec(), b"world".to_vec()]);
        buf[RECORD_HEADER_LEN + 5 + 2] ^= 0x01; // length 5 -> 65541
        let (recs, tail) = decode_records(&buf);
        assert_eq!(recs, vec![&b"hello"[..]]);
        assert!(matches!(tail, Tail::Corrupt { offset: 13, .. }), "{tail:?}");
    }

    #[test]
    fn next_record_streams() {
        let buf = stream(&[b"abc".to_vec()]);
        assert_eq!(next_record(&buf[..5]).unwrap(), None);
        assert_eq!(next_record(&buf[..10]).unwrap(), None);
        assert_eq!(next_record(&buf).unwrap(), Some((&b"abc"[..], 11)));
    }

    #[test]
    fn postcard_helpers() {
        let v: (u64, String) = (7, "x".into());
        let bytes = encode(&v).unwrap();
        assert_eq!(decode::<(u64, String)>(&bytes).unwrap(), v);
        let mut more = bytes.clone();
        more.push(0);
        assert_eq!(
            decode::<(u64, String)>(&more),
            Err(CodecError::TrailingBytes(1))
        );
        assert!(matches!(
            decode::<(u64, String)>(&bytes[..1]),
            Err(CodecError::Decode(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn round_trip(payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let buf = stream(&payloads);
            let (recs, tail) = decode_records(&buf);
            prop_assert_eq!(tail, Tail::Clean);
            prop_assert_eq!(recs.len(), payloads.len());
            for (r, p) in recs.iter().zip(&payloads) {
                prop_assert_eq!(*r, &p[..]);
            }
        }

        #[test]
        fn any_flipped_bit_is_detected(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 1..6),
            bit in any::<prop::sample::Index>(),
        ) {
            let mut buf = stream(&payloads);
            let bit = bit.index(buf.len() * 8);
            buf[bit / 8] ^= 1 << (bit % 8);
            let (recs, tail) = decode_records(&buf);
            // Never a record whose bytes differ from what was written.
            prop_assert!(recs.len() <= payloads.len());
            for (r, p) in recs.iter().zip(&payloads) {
                prop_assert_eq!(*r, &p[..]);
            }
            // Something was lost and it is reported as corruption (a flipped
            // length bit is recognised, never mistaken for a torn write).
            prop_assert!(recs.len() < payloads.len());
            prop_assert!(matches!(tail, Tail::Corrupt { .. }), "{:?}", tail);
        }
    }
}
