//! Reads of offsets that are no longer (or not yet) on local disk: find the
//! extent holding the offset, read its bytes through a moka block cache
//! (byte-weighted, bounded), and return whole batches. Sequential consumers
//! get the next blocks prefetched.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::log::batch::{self, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use crate::meta::tier::{Extent, ExtentKind};
use crate::objstore::{paths, Store, StoreError};

/// Cache block size: one GET per MiB keeps request counts low for
/// sequential reads and bounds waste for point reads.
pub const BLOCK: u64 = 1 << 20;
/// Blocks fetched ahead of a sequential reader.
const READ_AHEAD_BLOCKS: u64 = 2;

/// Cache statistics for `/metrics`.
#[derive(Default)]
pub struct CacheMetrics {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

/// Remote reader with its block cache.
pub struct TierReader {
    store: Arc<Store>,
    blocks: moka::future::Cache<(Arc<str>, u64), Bytes>,
    indexes: moka::future::Cache<Arc<str>, Arc<Vec<(u32, u32)>>>,
    pub metrics: CacheMetrics,
}

impl TierReader {
    /// `cache_bytes` bounds the block cache (weighed by bytes).
    pub fn new(store: Arc<Store>, cache_bytes: u64) -> Arc<TierReader> {
        let blocks = moka::future::Cache::builder()
            .weigher(|_k: &(Arc<str>, u64), v: &Bytes| v.len().min(u32::MAX as usize) as u32)
            .max_capacity(cache_bytes.max(BLOCK * 4))
            .build();
        let indexes = moka::future::Cache::builder()
            .weigher(|_k: &Arc<str>, v: &Arc<Vec<(u32, u32)>>| {
                (v.len() * 8).min(u32::MAX as usize) as u32
            })
            .max_capacity((cache_bytes / 8).max(1 << 20))
            .build();
        Arc::new(TierReader {
            store,
            blocks,
            indexes,
            metrics: CacheMetrics::default(),
        })
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Bytes currently cached.
    pub fn cached_bytes(&self) -> u64 {
        self.blocks.weighted_size()
    }

    async fn block(&self, key: &Arc<str>, n: u64, object_end: u64) -> Result<Bytes, StoreError> {
        let k = (key.clone(), n);
        let start = n * BLOCK;
        let end = ((n + 1) * BLOCK).min(object_end);
        if let Some(b) = self.blocks.get(&k).await {
            if b.len() as u64 >= end.saturating_sub(start) {
                self.metrics.hits.fetch_add(1, Relaxed);
                return Ok(b);
            }
            // Cached while the object was shorter: a growing object of
            // local mode, whose committed end has moved on since.
            self.blocks.invalidate(&k).await;
        }
        self.metrics.misses.fetch_add(1, Relaxed);
        let store = self.store.clone();
        let key_s = key.clone();
        self.blocks
            .try_get_with(k, async move { store.get_range(&key_s, start..end).await })
            .await
            // The loader's own error, kind intact (a timeout stays a timeout).
            .map_err(|e| Arc::try_unwrap(e).unwrap_or_else(|shared| (*shared).clone()))
    }

    /// Bytes `[from, to)` of an object whose total readable end is `object_end`.
    async fn range(
        &self,
        key: &Arc<str>,
        from: u64,
        to: u64,
        object_end: u64,
    ) -> Result<Bytes, StoreError> {
        let mut out = BytesMut::with_capacity((to - from) as usize);
        let mut pos = from;
        while pos < to {
            let n = pos / BLOCK;
            let b = self.block(key, n, object_end).await?;
            let off = (pos - n * BLOCK) as usize;
            if off >= b.len() {
                break;
            }
            let take = ((to - pos) as usize).min(b.len() - off);
            out.extend_from_slice(&b[off..off + take]);
            pos += take as u64;
        }
        Ok(out.freeze())
    }

    fn prefetch(self: &Arc<Self>, key: Arc<str>, after: u64, object_end: u64) {
        let next = after / BLOCK + 1;
        for n in next..next + READ_AHEAD_BLOCKS {
            if n * BLOCK >= object_end {
                break;
            }
            if self.blocks.contains_key(&(key.clone(), n)) {
                continue;
            }
            let me = self.clone();
            let k = key.clone();
            tokio::spawn(async move {
                let _ = me.block(&k, n, object_end).await;
            });
        }
    }

    async fn segment_index(&self, data_key: &str) -> Result<Arc<Vec<(u32, u32)>>, StoreError> {
        let ik: Arc<str> = Arc::from(paths::segment_index(data_key));
        let store = self.store.clone();
        let k2 = ik.clone();
        self.indexes
            .try_get_with(ik, async move {
                let b = store.get(&k2).await?;
                Ok(b.chunks_exact(8)
                    .map(|c| {
                        (
                            u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                            u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
                        )
                    })
                    .collect::<Vec<_>>()
                    .into())
            })
            .await
            .map_err(|e: Arc<StoreError>| StoreError::Backend {
                op: "get",
                key: data_key.to_string(),
                message: e.to_string(),
            })
    }

    /// Whole batches from the extent holding `offset`, starting with the
    /// batch that contains it, up to `max_bytes` (at least one batch) and
    /// never past `hw`.
    pub async fn read(
        self: &Arc<Self>,
        extent: &Extent,
        offset: i64,
        max_bytes: usize,
        hw: i64,
    ) -> Result<Bytes, StoreError> {
        let key: Arc<str> = Arc::from(extent.key.as_str());
        let start = extent.byte_offset;
        let end = extent.byte_offset + extent.byte_len;
        let mut pos = start;
        if extent.kind == ExtentKind::Segment && offset > extent.base_offset {
            if let Ok(idx) = self.segment_index(&extent.key).await {
                let rel = (offset - extent.base_offset) as u32;
                let i = idx.partition_point(|e| e.0 <= rel);
                if i > 0 {
                    pos = start + idx[i - 1].1 as u64;
                }
            }
        }
        // Scan headers to the batch holding `offset`.
        loop {
            if pos + HEADER_LEN as u64 > end {
                return Ok(Bytes::new());
            }
            let head = self.range(&key, pos, pos + HEADER_LEN as u64, end).await?;
            let h = BatchHeader::parse(&head).map_err(|e| corrupt(&extent.key, e.to_string()))?;
            if h.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
                return Err(corrupt(
                    &extent.key,
                    format!("bad batch length {}", h.batch_length),
                ));
            }
            if h.last_offset() >= offset {
                break;
            }
            pos += h.total_len() as u64;
        }
        // Read up to max_bytes, at least the first whole batch.
        let head = self
            .range(&key, pos, pos + LOG_OVERHEAD as u64, end)
            .await?;
        let first = batch::peek_batch_len(&head).unwrap_or(0).max(0) as u64 + LOG_OVERHEAD as u64;
        let want = (max_bytes as u64).max(first).min(end - pos);
        let bytes = self.range(&key, pos, pos + want, end).await?;
        self.prefetch(key, pos + want, end);
        // Whole batches below hw only.
        let mut cut = 0usize;
        while cut + HEADER_LEN <= bytes.len() {
            let Ok(h) = BatchHeader::parse(&bytes[cut..]) else {
                break;
            };
            if h.base_offset >= hw || cut + h.total_len() > bytes.len() {
                break;
            }
            cut += h.total_len();
        }
        Ok(bytes.slice(..cut))
    }

    /// Fetch an extent's raw bytes (recovery rebuilds the local tail).
    pub async fn extent_bytes(&self, extent: &Extent) -> Result<Bytes, StoreError> {
        self.store
            .get_range(
                &extent.key,
                extent.byte_offset..extent.byte_offset + extent.byte_len,
            )
            .await
    }
}

fn corrupt(key: &str, message: String) -> StoreError {
    StoreError::Backend {
        op: "get",
        key: key.to_string(),
        message: format!("corrupt object: {message}"),
    }
}
