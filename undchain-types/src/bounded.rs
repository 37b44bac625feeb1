//! Length-capped containers for everything that comes off the wire.
//!
//! Every list, byte string and text in a message is one of these types, so a
//! decoder refuses an oversized length prefix *before* it allocates
//! (DESIGN.md "Identities, messages, wire": "every length is bounded before
//! any allocation").

use core::fmt;
use core::marker::PhantomData;
use core::ops::Deref;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::wire::{Invalid, note_invalid};

/// Error returned when a value is longer than its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("length {len} exceeds the cap of {cap}")]
pub struct TooLong {
    /// The length that was offered.
    pub len: usize,
    /// The cap of the container.
    pub cap: usize,
}

/// A `Vec<T>` holding at most `N` items.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoundedVec<T, const N: usize>(Vec<T>);

impl<T, const N: usize> BoundedVec<T, N> {
    /// The most items the list may hold; decoding refuses a longer length prefix.
    pub const CAP: usize = N;

    /// An empty list.
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Wraps `items`, refusing more than `N`.
    pub fn try_from_vec(items: Vec<T>) -> Result<Self, TooLong> {
        if items.len() > N {
            return Err(TooLong {
                len: items.len(),
                cap: N,
            });
        }
        Ok(Self(items))
    }

    /// Wraps the first `N` items of `items`, dropping the rest.
    pub fn truncating(mut items: Vec<T>) -> Self {
        items.truncate(N);
        Self(items)
    }

    /// Appends `item`, refusing to grow past `N`.
    pub fn push(&mut self, item: T) -> Result<(), TooLong> {
        if self.0.len() >= N {
            return Err(TooLong {
                len: self.0.len() + 1,
                cap: N,
            });
        }
        self.0.push(item);
        Ok(())
    }

    /// The items, in order.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    /// Unwraps into the inner vector.
    pub fn into_vec(self) -> Vec<T> {
        self.0
    }
}

impl<T, const N: usize> Default for BoundedVec<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> Deref for BoundedVec<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: fmt::Debug, const N: usize> fmt::Debug for BoundedVec<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T, const N: usize> TryFrom<Vec<T>> for BoundedVec<T, N> {
    type Error = TooLong;
    fn try_from(v: Vec<T>) -> Result<Self, TooLong> {
        Self::try_from_vec(v)
    }
}

impl<'a, T, const N: usize> IntoIterator for &'a BoundedVec<T, N> {
    type Item = &'a T;
    type IntoIter = core::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T: Serialize, const N: usize> Serialize for BoundedVec<T, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for BoundedVec<T, N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const N: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for V<T, N> {
            type Value = BoundedVec<T, N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a list of at most {N} items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // postcard reports the exact length prefix here: refuse it
                // before reserving anything.
                let hint = seq.size_hint().unwrap_or(0);
                if hint > N {
                    note_invalid(Invalid::ListTooLong { len: hint, cap: N });
                    return Err(de::Error::custom("list too long"));
                }
                let mut out = Vec::with_capacity(hint);
                while let Some(item) = seq.next_element()? {
                    if out.len() == N {
                        note_invalid(Invalid::ListTooLong { len: N + 1, cap: N });
                        return Err(de::Error::custom("list too long"));
                    }
                    out.push(item);
                }
                Ok(BoundedVec(out))
            }
        }
        d.deserialize_seq(V::<T, N>(PhantomData))
    }
}

/// A byte string of at most `N` bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BoundedBytes<const N: usize>(Vec<u8>);

impl<const N: usize> BoundedBytes<N> {
    /// The most bytes the string may hold; decoding refuses a longer length prefix.
    pub const CAP: usize = N;

    /// Wraps `bytes`, refusing more than `N`.
    pub fn try_from_vec(bytes: Vec<u8>) -> Result<Self, TooLong> {
        if bytes.len() > N {
            return Err(TooLong {
                len: bytes.len(),
                cap: N,
            });
        }
        Ok(Self(bytes))
    }

    /// Copies `bytes`, refusing more than `N`.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, TooLong> {
        Self::try_from_vec(bytes.to_vec())
    }

    /// The bytes, as a slice.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Unwraps into the inner vector.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl<const N: usize> Deref for BoundedBytes<N> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl<const N: usize> fmt::Debug for BoundedBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x")?;
        for b in self.0.iter().take(32) {
            write!(f, "{b:02x}")?;
        }
        if self.0.len() > 32 {
            write!(f, "..({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

impl<const N: usize> Serialize for BoundedBytes<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de, const N: usize> Deserialize<'de> for BoundedBytes<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const N: usize>;
        impl<'de, const N: usize> Visitor<'de> for V<N> {
            type Value = BoundedBytes<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "at most {N} bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                if v.len() > N {
                    note_invalid(Invalid::BytesTooLong {
                        len: v.len(),
                        cap: N,
                    });
                    return Err(E::custom("bytes too long"));
                }
                Ok(BoundedBytes(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
                self.visit_bytes(&v)
            }
        }
        d.deserialize_bytes(V::<N>)
    }
}

/// UTF-8 text of at most `N` bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BoundedString<const N: usize>(String);

impl<const N: usize> BoundedString<N> {
    /// The cap in bytes.
    pub const CAP: usize = N;

    /// Wraps `text`, refusing more than `N` bytes.
    pub fn try_new(text: impl Into<String>) -> Result<Self, TooLong> {
        let text = text.into();
        if text.len() > N {
            return Err(TooLong {
                len: text.len(),
                cap: N,
            });
        }
        Ok(Self(text))
    }

    /// Wraps the longest prefix of `text` (on a character boundary) that fits.
    pub fn truncating(text: &str) -> Self {
        let mut end = text.len().min(N);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Self(text[..end].to_owned())
    }

    /// The text, as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const N: usize> Deref for BoundedString<N> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<const N: usize> fmt::Debug for BoundedString<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<const N: usize> fmt::Display for BoundedString<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<const N: usize> Serialize for BoundedString<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de, const N: usize> Deserialize<'de> for BoundedString<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const N: usize>;
        impl<'de, const N: usize> Visitor<'de> for V<N> {
            type Value = BoundedString<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "text of at most {N} bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v.len() > N {
                    note_invalid(Invalid::TextTooLong {
                        len: v.len(),
                        cap: N,
                    });
                    return Err(E::custom("text too long"));
                }
                Ok(BoundedString(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                self.visit_str(&v)
            }
        }
        d.deserialize_str(V::<N>)
    }
}

#[cfg(feature = "proptest")]
mod arbitrary {
    use super::*;
    use proptest::prelude::*;

    impl<T: Arbitrary + 'static, const N: usize> Arbitrary for BoundedVec<T, N> {
        type Parameters = ();
        type Strategy = BoxedStrategy<Self>;
        fn arbitrary_with(_: ()) -> Self::Strategy {
            proptest::collection::vec(any::<T>(), 0..=N.min(4))
                .prop_map(BoundedVec)
                .boxed()
        }
    }

    impl<const N: usize> Arbitrary for BoundedBytes<N> {
        type Parameters = ();
        type Strategy = BoxedStrategy<Self>;
        fn arbitrary_with(_: ()) -> Self::Strategy {
            proptest::collection::vec(any::<u8>(), 0..=N.min(64))
                .prop_map(BoundedBytes)
                .boxed()
        }
    }

    impl<const N: usize> Arbitrary for BoundedString<N> {
        type Parameters = ();
        type Strategy = BoxedStrategy<Self>;
        fn arbitrary_with(_: ()) -> Self::Strategy {
            "[a-zA-Z0-9 .:_-]{0,24}"
                .prop_map(|s: String| BoundedString::truncating(&s))
                .boxed()
        }
    }
}
