//! The canonical encoding of a [`JobEntry`], written and read by hand: the
//! exact bytes `undchain_types::wire::encode_bare` produces (postcard:
//! fixed arrays raw, integers and enum variants and lengths as LEB128
//! varints), about ten times cheaper than going through serde. Leaf hashes
//! are blake3 of these bytes, and reconciliation ships entries as a column
//! of them (`docs/PROTOCOL.md` "Job files and reconciliation").
//!
//! The encoder destructures [`JobEntry`] and matches every enum
//! exhaustively, so a new field or variant fails to compile here rather
//! than silently diverging; the tests compare against the serde path.

use undchain_types::job::MAX_POOL;
use undchain_types::{
    BlockTime, BoundedVec, Hash32, HashContext, JobEntry, JobId, JobState, PublicKey, TokenAmount,
    UtilityKind,
};

/// Largest encoding of an entry: id, two varints of at most 10 bytes, two
/// one-byte enum tags and two pools of at most [`MAX_POOL`] keys.
pub(crate) const MAX_ENTRY_BYTES: usize = 32 + 10 + 1 + 2 * (1 + 32 * MAX_POOL) + 10 + 1;
/// Smallest encoding of an entry (empty pools, small numbers).
#[cfg(test)]
pub(crate) const MIN_ENTRY_BYTES: usize = 32 + 1 + 1 + 1 + 1 + 1 + 1;

/// Why bytes are not a canonical entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadEntry(pub(crate) &'static str);

fn kind_tag(k: UtilityKind) -> u8 {
    match k {
        UtilityKind::Storage => 0,
        UtilityKind::Computation => 1,
        UtilityKind::Access => 2,
    }
}

fn kind_of(tag: u64) -> Option<UtilityKind> {
    match tag {
        0 => Some(UtilityKind::Storage),
        1 => Some(UtilityKind::Computation),
        2 => Some(UtilityKind::Access),
        _ => None,
    }
}

fn state_tag(s: JobState) -> u8 {
    match s {
        JobState::Requested => 0,
        JobState::Assigned => 1,
        JobState::Started => 2,
    }
}

fn state_of(tag: u64) -> Option<JobState> {
    match tag {
        0 => Some(JobState::Requested),
        1 => Some(JobState::Assigned),
        2 => Some(JobState::Started),
        _ => None,
    }
}

#[inline]
fn put_varint(buf: &mut [u8; MAX_ENTRY_BYTES], n: &mut usize, mut v: u64) {
    while v >= 0x80 {
        buf[*n] = (v as u8) | 0x80;
        v >>= 7;
        *n += 1;
    }
    buf[*n] = v as u8;
    *n += 1;
}

#[inline]
fn put(buf: &mut [u8; MAX_ENTRY_BYTES], n: &mut usize, bytes: &[u8]) {
    buf[*n..*n + bytes.len()].copy_from_slice(bytes);
    *n += bytes.len();
}

/// Writes the canonical encoding of `e` into `buf`; returns its length.
pub(crate) fn encode_into(e: &JobEntry, buf: &mut [u8; MAX_ENTRY_BYTES]) -> usize {
    let JobEntry {
        id,
        initiated_at,
        kind,
        client_pool,
        partner_pool,
        fee,
        state,
    } = e;
    let mut n = 0;
    put(buf, &mut n, &id.0.0);
    put_varint(buf, &mut n, initiated_at.0);
    put_varint(buf, &mut n, u64::from(kind_tag(*kind)));
    for pool in [client_pool, partner_pool] {
        // A BoundedVec holds at most MAX_POOL keys.
        let keys = &pool[..pool.len().min(MAX_POOL)];
        put_varint(buf, &mut n, keys.len() as u64);
        for k in keys {
            put(buf, &mut n, k.as_bytes());
        }
    }
    put_varint(buf, &mut n, fee.0);
    put_varint(buf, &mut n, u64::from(state_tag(*state)));
    n
}

fn varint_len(v: u64) -> usize {
    (64 - v.max(1).leading_zeros() as usize).div_ceil(7)
}

/// The length of the canonical encoding of `e`.
pub(crate) fn encoded_len(e: &JobEntry) -> usize {
    let pools = e.client_pool.len().min(MAX_POOL) + e.partner_pool.len().min(MAX_POOL);
    32 + varint_len(e.initiated_at.0) + 1 + 2 + 32 * pools + varint_len(e.fee.0) + 1
}

/// Appends the canonical encoding of `e` to `out`.
pub(crate) fn encode_entry(e: &JobEntry, out: &mut Vec<u8>) {
    if encoded_len(e) <= SMALL {
        let mut buf = [0u8; SMALL];
        let n = encode_small(e, &mut buf);
        out.extend_from_slice(&buf[..n]);
    } else {
        let mut buf = [0u8; MAX_ENTRY_BYTES];
        let n = encode_into(e, &mut buf);
        out.extend_from_slice(&buf[..n]);
    }
}

/// Entries up to this size (pools of at most two keys) are encoded in a
/// small stack buffer.
const SMALL: usize = 128;

/// [`encode_into`] for an entry of at most [`SMALL`] bytes.
fn encode_small(e: &JobEntry, buf: &mut [u8; SMALL]) -> usize {
    let mut n = 0;
    let mut put = |b: &[u8]| {
        buf[n..n + b.len()].copy_from_slice(b);
        n += b.len();
    };
    let mut tmp = [0u8; 10];
    put(&e.id.0.0);
    put(varint(e.initiated_at.0, &mut tmp));
    put(&[kind_tag(e.kind)]);
    for pool in [&e.client_pool, &e.partner_pool] {
        put(&[pool.len() as u8]);
        for k in pool.iter() {
            put(k.as_bytes());
        }
    }
    put(varint(e.fee.0, &mut tmp));
    put(&[state_tag(e.state)]);
    n
}

/// The LEB128 varint of `v`, in `tmp`.
#[inline]
fn varint(mut v: u64, tmp: &mut [u8; 10]) -> &[u8] {
    let mut n = 0;
    while v >= 0x80 {
        tmp[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    tmp[n] = v as u8;
    &tmp[..=n]
}

/// The leaf hash of `e`: blake3 under [`HashContext::JobEntry`] of its
/// canonical encoding.
#[inline]
pub(crate) fn leaf_hash_of(e: &JobEntry) -> Hash32 {
    if encoded_len(e) <= SMALL {
        let mut buf = [0u8; SMALL];
        let n = encode_small(e, &mut buf);
        leaf_hash_bytes(&buf[..n])
    } else {
        let mut buf = [0u8; MAX_ENTRY_BYTES];
        let n = encode_into(e, &mut buf);
        leaf_hash_bytes(&buf[..n])
    }
}

/// The leaf hash of an entry given its canonical encoding.
#[inline]
pub(crate) fn leaf_hash_bytes(bytes: &[u8]) -> Hash32 {
    Hash32(*blake3::keyed_hash(HashContext::JobEntry.key(), bytes).as_bytes())
}

/// Reads canonical values from the front of a byte slice.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BadEntry> {
        let s = self
            .bytes
            .get(self.pos..self.pos + n)
            .ok_or(BadEntry("entry cut short"))?;
        self.pos += n;
        Ok(s)
    }

    fn array32(&mut self) -> Result<[u8; 32], BadEntry> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32)?);
        Ok(a)
    }

    /// A LEB128 varint of at most `max_bytes` bytes, in its shortest form.
    fn varint(&mut self, max_bytes: usize) -> Result<u64, BadEntry> {
        let mut v = 0u64;
        for i in 0..max_bytes {
            let b = *self
                .bytes
                .get(self.pos)
                .ok_or(BadEntry("entry cut short"))?;
            self.pos += 1;
            let part = u64::from(b & 0x7f);
            if i == 9 && part > 1 {
                return Err(BadEntry("varint overflows"));
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(BadEntry("varint not in shortest form"));
                }
                return Ok(v);
            }
        }
        Err(BadEntry("varint too long"))
    }

    fn pool(&mut self) -> Result<BoundedVec<PublicKey, MAX_POOL>, BadEntry> {
        let len = self.varint(5)?;
        if len > MAX_POOL as u64 {
            return Err(BadEntry("pool too long"));
        }
        let mut keys = Vec::with_capacity(len as usize);
        for _ in 0..len {
            let k = PublicKey::from_bytes(&self.array32()?).map_err(|_| BadEntry("invalid key"))?;
            keys.push(k);
        }
        BoundedVec::try_from_vec(keys).map_err(|_| BadEntry("pool too long"))
    }
}

/// Reads one canonical entry from the front of `bytes`; returns it and the
/// bytes it used.
pub(crate) fn decode_entry(bytes: &[u8]) -> Result<(JobEntry, usize), BadEntry> {
    let mut c = Cursor { bytes, pos: 0 };
    let id = JobId(Hash32(c.array32()?));
    let initiated_at = BlockTime(c.varint(10)?);
    let kind = kind_of(c.varint(5)?).ok_or(BadEntry("unknown utility kind"))?;
    let client_pool = c.pool()?;
    let partner_pool = c.pool()?;
    let fee = TokenAmount(c.varint(10)?);
    let state = state_of(c.varint(5)?).ok_or(BadEntry("unknown job state"))?;
    Ok((
        JobEntry {
            id,
            initiated_at,
            kind,
            client_pool,
            partner_pool,
            fee,
            state,
        },
        c.pos,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use undchain_types::{SigningKey, wire};

    fn key(n: u8) -> PublicKey {
        SigningKey::from_seed([n; 32]).public()
    }

    fn entries() -> Vec<JobEntry> {
        let mut out = Vec::new();
        let times = [
            0u64,
            1,
            127,
            128,
            16_383,
            16_384,
            1 << 35,
            u64::MAX - 1,
            u64::MAX,
        ];
        for (i, &t) in times.iter().enumerate() {
            for (j, kind) in UtilityKind::ALL.iter().enumerate() {
                let pool = |n: usize| -> BoundedVec<PublicKey, MAX_POOL> {
                    BoundedVec::try_from_vec((0..n).map(|k| key(k as u8 + 1)).collect()).unwrap()
                };
                out.push(JobEntry {
                    id: JobId(Hash32([(i * 7 + j) as u8; 32])),
                    initiated_at: BlockTime(t),
                    kind: *kind,
                    client_pool: pool((i + j) % 3),
                    partner_pool: pool(if i == 0 { MAX_POOL } else { j }),
                    fee: TokenAmount(times[(i + j) % times.len()]),
                    state: [JobState::Requested, JobState::Assigned, JobState::Started][j],
                });
            }
        }
        out
    }

    #[test]
    fn encoding_and_leaf_hash_match_the_serde_path() {
        for e in entries() {
            let mut mine = Vec::new();
            encode_entry(&e, &mut mine);
            assert_eq!(mine, wire::encode_bare(&e));
            assert_eq!(encoded_len(&e), mine.len());
            assert_eq!(leaf_hash_of(&e), e.leaf_hash());
            assert!(mine.len() <= MAX_ENTRY_BYTES && mine.len() >= MIN_ENTRY_BYTES);
            let (back, used) = decode_entry(&mine).unwrap();
            assert_eq!(back, e);
            assert_eq!(used, mine.len());
            // Any cut is refused, never a panic.
            for cut in 0..mine.len() {
                assert!(decode_entry(&mine[..cut]).is_err());
            }
        }
    }

    #[test]
    fn non_canonical_bytes_are_refused() {
        let e = &entries()[3];
        let mut good = Vec::new();
        encode_entry(e, &mut good);
        // A time varint padded with a zero continuation byte.
        let mut padded = good[..32].to_vec();
        let mut t = Vec::new();
        let mut v = e.initiated_at.0;
        while v >= 0x80 {
            t.push((v as u8) | 0x80);
            v >>= 7;
        }
        t.push(v as u8 | 0x80);
        t.push(0);
        padded.extend(&t);
        padded.extend(&good[32 + t.len() - 1..]);
        assert_eq!(
            decode_entry(&padded).unwrap_err(),
            BadEntry("varint not in shortest form")
        );
        // An unknown utility kind.
        let mut bad = good.clone();
        let tag = 32 + t.len() - 1;
        bad[tag] = 3;
        assert!(decode_entry(&bad).is_err());
        // An 11-byte varint.
        let mut long = good[..32].to_vec();
        long.extend([0xff; 10]);
        long.push(1);
        assert!(decode_entry(&long).is_err());
    }
}
