//! One shared object's memory: a small header, the object's fixed state (its
//! locks and counters), then an optional array of elements, all in one
//! size-sealed memfd mapping that every process holding the object maps.
//!
//! The memory goes away with the last descriptor and mapping, so a crash can
//! leak nothing. The header lets a receiving process check that the
//! descriptor it was handed really is the object its type expects (kind,
//! element type, length) before it touches the memory: a mismatch is a
//! decode error, never a misread.

use crate::error::Error;
use crate::sys::shm::Region;
use crate::wire::handles::Handles;
use serde::de::Error as _;
use serde::{Deserializer, Serializer};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

const MAGIC: u64 = u64::from_le_bytes(*b"mp-share");
/// Where the state starts: the header rounded up to a cache line.
const STATE_AT: usize = 64;

/// Which shared object a block holds (its wire tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Lock = 1,
    RLock,
    Semaphore,
    Condition,
    Event,
    Barrier,
    Value,
    Array,
    RawValue,
    RawArray,
}

/// State that may live in a shared block.
///
/// # Safety
/// The type must be `#[repr(C)]`, valid when all-zero (a fresh memfd reads
/// as zeros), at most 64-byte aligned, and mutated only through atomics,
/// `UnsafeCell`s or process-shared locks: every process maps it at once.
pub(crate) unsafe trait State: Sized {}

#[repr(C)]
struct Header {
    magic: u64,
    kind: u64,
    /// Identifies the element type (see [`type_tag`]); 0 for none.
    elem_tag: u64,
    elem_size: u64,
    len: u64,
    state_size: u64,
}

/// The element layout of a block: a type tag, size and alignment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Elem {
    tag: u64,
    size: usize,
    align: usize,
}

impl Elem {
    /// No elements.
    pub(crate) const NONE: Elem = Elem {
        tag: 0,
        size: 0,
        align: 1,
    };

    /// Elements of type `T`.
    pub(crate) fn of<T>() -> Elem {
        Elem {
            tag: type_tag::<T>(),
            size: size_of::<T>(),
            align: align_of::<T>(),
        }
    }

    /// Elements of a fixed byte size with no type (slots of a lock table).
    pub(crate) fn slots(size: usize, align: usize) -> Elem {
        Elem {
            tag: 0,
            size,
            align,
        }
    }
}

/// A stable-within-one-program identity for `T`: a hash of its name and
/// size, so that a `Value<u32>` received as a `Value<f32>` is refused.
fn type_tag<T>() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in std::any::type_name::<T>().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h ^ size_of::<T>() as u64
}

fn payload_at<S>(elem: Elem) -> usize {
    (STATE_AT + size_of::<S>()).next_multiple_of(elem.align.max(8))
}

/// A mapped shared object: header, state `S`, elements. Clones share the
/// mapping.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    region: Arc<Region>,
    payload: usize,
    len: usize,
}

impl Block {
    /// Creates a zeroed block for state `S` and `len` elements, and lets
    /// `init` set the state up (its locks) before anyone else can see it.
    pub(crate) fn create<S: State>(
        kind: Kind,
        elem: Elem,
        len: usize,
        init: impl FnOnce(&S) -> std::io::Result<()>,
    ) -> Result<Block, Error> {
        const { assert!(align_of::<S>() <= STATE_AT) };
        let payload = payload_at::<S>(elem);
        let total = elem
            .size
            .checked_mul(len)
            .and_then(|n| n.checked_add(payload))
            .filter(|n| *n <= isize::MAX as usize)
            .ok_or_else(|| {
                Error::misuse(format!("a shared array of {len} elements is too large"))
            })?;
        let region = Region::create(c"multiproc-shared", total)
            .map_err(|e| Error::io("cannot create shared memory", e))?;
        // SAFETY: the region is fresh, page-aligned and at least `STATE_AT`
        // bytes long; nobody else maps it yet.
        unsafe {
            region.ptr().cast::<Header>().write(Header {
                magic: MAGIC,
                kind: kind as u64,
                elem_tag: elem.tag,
                elem_size: elem.size as u64,
                len: len as u64,
                state_size: size_of::<S>() as u64,
            });
        }
        let block = Block {
            region: Arc::new(region),
            payload,
            len,
        };
        init(block.state::<S>()).map_err(|e| Error::io("cannot initialise a shared lock", e))?;
        Ok(block)
    }

    /// Maps a block received from another process, checking that it holds
    /// a `kind` object with state `S` and elements `elem`.
    pub(crate) fn open<S: State>(fd: OwnedFd, kind: Kind, elem: Elem) -> Result<Block, String> {
        let size = std::fs::File::from(fd.try_clone().map_err(|e| e.to_string())?)
            .metadata()
            .map_err(|e| e.to_string())?
            .len();
        let size = usize::try_from(size).map_err(|_| "shared object too large".to_owned())?;
        if size < STATE_AT + size_of::<S>() {
            return Err(format!("not a shared {kind:?}: {size} bytes"));
        }
        let region = Region::open(fd, size).map_err(|e| e.to_string())?;
        // SAFETY: the region holds at least a header (checked above); its
        // fields are plain integers, any bits are valid.
        let h = unsafe { region.ptr().cast::<Header>().read() };
        let payload = payload_at::<S>(elem);
        let expect = h.magic == MAGIC
            && h.kind == kind as u64
            && h.elem_tag == elem.tag
            && h.elem_size == elem.size as u64
            && h.state_size == size_of::<S>() as u64;
        let fits = (h.len as usize)
            .checked_mul(elem.size)
            .and_then(|n| n.checked_add(payload))
            .is_some_and(|n| n <= size);
        if !expect || !fits {
            return Err(format!(
                "the shared memory received is not a {kind:?} of this element type"
            ));
        }
        Ok(Block {
            region: Arc::new(region),
            payload,
            len: h.len as usize,
        })
    }

    /// The object's state.
    pub(crate) fn state<S: State>(&self) -> &S {
        // SAFETY: [1] `create`/`open` checked that the region holds an `S`
        // at `STATE_AT` (page-aligned base + 64 satisfies its alignment);
        // [2] `S: State` is valid as zeros and only mutated through shared
        // interior mutability, so a shared reference is sound while the
        // mapping lives, which is as long as `self`.
        unsafe { &*self.region.ptr().add(STATE_AT).cast::<S>() }
    }

    /// The first element (aligned for the element type).
    pub(crate) fn payload(&self) -> *mut u8 {
        // SAFETY: `payload` is within the region (checked at create/open).
        unsafe { self.region.ptr().add(self.payload) }
    }

    /// How many elements.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The object's identity (its memfd's device and inode): the same in
    /// every process and every mapping.
    pub(crate) fn identity(&self) -> Option<(u64, u64)> {
        use std::os::fd::AsRawFd;
        crate::sys::fd_identity(self.region.fd().as_raw_fd())
    }

    /// Whether two handles are the same object, even if they came to this
    /// process separately (two mappings of one memfd).
    pub(crate) fn same(&self, other: &Block) -> bool {
        self.region.ptr() == other.region.ptr()
            || (self.identity().is_some() && self.identity() == other.identity())
    }

    /// Writes the block as its descriptor (handle table) and kind tag.
    pub(crate) fn serialize<Ser: Serializer>(
        &self,
        kind: Kind,
        s: Ser,
    ) -> Result<Ser::Ok, Ser::Error> {
        let fd: BorrowedFd<'_> = self.region.as_fd();
        Handles::serialize(&[fd], kind as u8, s)
    }

    /// Reads a block written by [`serialize`](Self::serialize).
    pub(crate) fn deserialize<'de, S: State, D: Deserializer<'de>>(
        d: D,
        kind: Kind,
        elem: Elem,
    ) -> Result<Block, D::Error> {
        // Postcard's reader drops custom messages: keep them for the caller.
        let fail = |msg: String| D::Error::custom(crate::wire::remember_error(msg));
        let (mut fds, tag) = Handles::deserialize(d, 1)?;
        if tag != kind as u8 {
            return Err(fail(format!(
                "expected a shared {kind:?}, got another shared object"
            )));
        }
        let fd = fds.pop().ok_or_else(|| fail("missing descriptor".into()))?;
        Block::open::<S>(fd, kind, elem).map_err(fail)
    }
}

/// Implements `Serialize`/`Deserialize` for a shared type whose only field
/// is `block: Block`, with state `$state`, kind `$kind` and element layout
/// `$elem`, plus `after_open` run on the deserialized value.
macro_rules! shared_serde {
    ($ty:ident $(<$g:ident: $bound:path>)?, $state:ty, $kind:expr, $elem:expr) => {
        impl$(<$g: $bound>)? serde::Serialize for $ty$(<$g>)? {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.block.serialize($kind, s)
            }
        }

        impl<'de $(, $g: $bound)?> serde::Deserialize<'de> for $ty$(<$g>)? {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let block = $crate::shared::block::Block::deserialize::<$state, D>(d, $kind, $elem)?;
                Ok(Self::from_block(block))
            }
        }
    };
}
pub(crate) use shared_serde;
