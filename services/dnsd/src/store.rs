//! Where the cache keeps its answers' bytes: pools of equal-sized blocks,
//! one pool per size class, each one growing buffer.
//!
//! Why not one heap allocation per answer: the cache holds thousands of
//! small answers for minutes, allocated between the short-lived buffers
//! of the queries in flight. The system allocator scatters them across
//! the heap, and what the queries free between them cannot be given
//! back: in `cargo xtask bench dns`, a full cache of 10,000 answers
//! (0.9 MB) kept the heap at 2.4-3.8 MB. Pooled, the answers sit
//! together and the heap stays the size of what the queries use. No
//! crate keeps variable-sized byte strings this way (`slab` holds one
//! type; arenas free all at once), so this is written here.
//!
//! A block is freed into its pool's free list and reused by the next
//! answer of its class; pools shrink only when the cache is flushed.

/// Block sizes: steps of 32 bytes up to 256 (most answers), then about
/// 1.5 times the last, up to the largest DNS message.
const CLASSES: [usize; 22] = [
    32, 64, 96, 128, 160, 192, 224, 256, 384, 576, 864, 1296, 1944, 2916, 4374, 6561, 9842, 14763,
    22145, 33218, 49827, 65535,
];

/// Bytes a pool grows by at least (one block when its blocks are larger):
/// a budget in bytes, not in blocks, so one 64 KB answer reserves 64 KB,
/// not sixteen times that. The pools below this size waste at most
/// 13 × 4 KB between them, which keeps a freshly compacted store under
/// the cache's compaction bound.
const MIN_GROWTH_BYTES: usize = 4096;

/// Where one answer's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handle {
    class: u8,
    len: u16,
    block: u32,
}

#[derive(Debug, Default)]
struct Pool {
    bytes: Vec<u8>,
    free: Vec<u32>,
}

/// The pools.
#[derive(Debug)]
pub struct Store {
    pools: Vec<Pool>,
    /// Bytes of the blocks in use.
    used: usize,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            pools: CLASSES.iter().map(|_| Pool::default()).collect(),
            used: 0,
        }
    }
}

impl Store {
    /// Copies `bytes` in; `None` when longer than any DNS message.
    pub fn put(&mut self, bytes: &[u8]) -> Option<Handle> {
        let len = u16::try_from(bytes.len()).ok()?;
        let class = CLASSES.iter().position(|&size| size >= bytes.len())?;
        let size = CLASSES[class];
        let pool = &mut self.pools[class];
        let block = match pool.free.pop() {
            Some(block) => block,
            None => {
                let blocks = pool.bytes.len() / size;
                if pool.bytes.len() == pool.bytes.capacity() {
                    let least = (MIN_GROWTH_BYTES / size).max(1);
                    pool.bytes.reserve_exact(blocks.max(least) * size);
                }
                pool.bytes.resize(pool.bytes.len() + size, 0);
                u32::try_from(blocks).ok()?
            }
        };
        let at = block as usize * size;
        pool.bytes[at..at + bytes.len()].copy_from_slice(bytes);
        self.used += size;
        Some(Handle {
            class: u8::try_from(class).ok()?,
            len,
            block,
        })
    }

    /// The bytes at `h`.
    pub fn get(&self, h: Handle) -> &[u8] {
        let size = CLASSES[usize::from(h.class)];
        let at = h.block as usize * size;
        &self.pools[usize::from(h.class)].bytes[at..at + usize::from(h.len)]
    }

    /// The bytes at `h`, to change in place.
    pub fn get_mut(&mut self, h: Handle) -> &mut [u8] {
        let size = CLASSES[usize::from(h.class)];
        let at = h.block as usize * size;
        &mut self.pools[usize::from(h.class)].bytes[at..at + usize::from(h.len)]
    }

    /// Frees the block at `h` for the next answer of its class.
    pub fn free(&mut self, h: Handle) {
        self.pools[usize::from(h.class)].free.push(h.block);
        self.used -= CLASSES[usize::from(h.class)];
    }

    /// Bytes of the blocks in use.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Bytes the pools hold, in use or free.
    pub fn reserved(&self) -> usize {
        self.pools.iter().map(|p| p.bytes.capacity()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_back_as_put_and_freed_blocks_are_reused() {
        let mut s = Store::default();
        let a = s.put(&[1; 10]).expect("put");
        let b = s.put(&[2; 40]).expect("put");
        let c = s.put(&[3; 300]).expect("put");
        let d = s.put(&[4; 65535]).expect("largest");
        assert_eq!(s.get(a), &[1; 10]);
        assert_eq!(s.get(b), &[2; 40]);
        assert_eq!(s.get(c), &[3; 300]);
        assert_eq!(s.get(d).len(), 65535);
        assert!(s.put(&vec![0; 65536]).is_none());
        s.free(a);
        let e = s.put(&[5; 32]).expect("put");
        assert_eq!(e.block, a.block, "the freed block is reused");
        assert_eq!(s.get(e), &[5; 32]);
        assert_eq!(s.get(b), &[2; 40], "neighbours untouched");
        // Growing a pool moves its buffer; handles stay valid.
        let many: Vec<Handle> = (0..1000u16)
            .map(|i| s.put(&i.to_be_bytes()).expect("put"))
            .collect();
        for (i, h) in (0..1000u16).zip(&many) {
            assert_eq!(s.get(*h), &i.to_be_bytes());
        }
        assert_eq!(s.get(e), &[5; 32]);
        assert_eq!(s.used(), 32 + 64 + 384 + 65535 + 1000 * 32);
        assert!(s.reserved() >= s.used());
    }
}
