//! Incremental fetch sessions (KIP-227): the broker remembers, per session,
//! the partitions a consumer fetches and what it last told it about them, so
//! a consumer of thousands of partitions sends only the partitions whose
//! fetch position changed, and hears only about partitions with news.
//!
//! The rules are Kafka's (`FetchManager.newContext`, `FetchSessionCache`):
//! - epoch 0 (`INITIAL`) or -1 (`FINAL`) is a full fetch; a session id sent
//!   with it is closed. Epoch 0 asks for a new session (created after the
//!   response is read, if the cache admits it), -1 for none.
//! - any other epoch is incremental: unknown id → FETCH_SESSION_ID_NOT_FOUND,
//!   epoch other than the session's → INVALID_FETCH_SESSION_EPOCH, a
//!   topic-id session used by a request without ids (or the reverse) →
//!   FETCH_SESSION_TOPIC_ID_ERROR. Otherwise the request's partitions are
//!   added or updated, its forgotten ones dropped, every session partition
//!   is read, and the response carries only those with records, a new high
//!   watermark or log start offset, an error or a preferred replica. Those
//!   that had something move to the end of the session's order, so that a
//!   response filled to `max_bytes` does not starve the later partitions.
//! - bounded: at most `slots` sessions (Kafka's
//!   `max.incremental.fetch.session.cache.slots`) and at most
//!   `max_partitions` partitions per session (a bigger full fetch gets no
//!   session; an incremental fetch growing past it closes its session).
//! - eviction, when a new session finds the cache full: the least recently
//!   used session if it went unused longer than `eviction_ms`; otherwise the
//!   least valuable evictable session (ordered by privileged, then size,
//!   then id) if the new one is at least as valuable. Sessions younger than
//!   `eviction_ms` are evictable only by privileged (replica) fetchers, and
//!   only when they are not privileged themselves.
//!
//! Pure: time comes in as `now_ms`, session ids from a seeded generator.
//! One mutex guards the cache; the handler holds it only to update the
//! session's map, never across I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use uuid::Uuid;

use crate::kafka::code;

/// Session id of "no session".
pub const INVALID_SESSION_ID: i32 = 0;
/// Epoch of a full fetch that asks for a new session.
pub const INITIAL_EPOCH: i32 = 0;
/// Epoch of a full fetch that wants no session.
pub const FINAL_EPOCH: i32 = -1;

/// How a session names a topic: by id from Fetch v13 on, by name before.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TopicKey {
    Id(Uuid),
    Name(String),
}

/// A topic-partition of a session.
pub type PartKey = (TopicKey, i32);

/// What a fetch request says about one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchPosition {
    pub offset: i64,
    pub max_bytes: i32,
    pub leader_epoch: i32,
}

/// What a fetch response said about one partition (to decide whether an
/// incremental response must carry it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionNews {
    pub records: usize,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub error: bool,
    pub preferred_replica: bool,
}

/// The session part of one fetch request.
#[derive(Clone, Debug)]
pub struct SessionRequest {
    pub session_id: i32,
    pub epoch: i32,
    /// Fetch v13+: topics are named by id.
    pub uses_ids: bool,
    /// A replica (not a consumer) fetches: its sessions are worth more.
    pub privileged: bool,
    /// Partitions named in the request, in request order.
    pub updates: Vec<(PartKey, FetchPosition)>,
    /// `forgotten_topics_data`.
    pub forgotten: Vec<PartKey>,
}

/// How to serve a fetch, decided by [`FetchSessionCache::new_context`].
#[derive(Debug, PartialEq)]
pub enum Context {
    /// Answer only this top-level error, with session id 0.
    Error(i16),
    /// A full fetch of the request's partitions, no session (id 0).
    Sessionless,
    /// A full fetch of the request's partitions; afterwards try to create a
    /// session with [`FetchSessionCache::create`].
    Full,
    /// Read every partition of session `id` (in this order) and answer
    /// with what [`FetchSessionCache::finish_incremental`] keeps.
    Incremental {
        id: i32,
        parts: Vec<(PartKey, FetchPosition)>,
    },
}

/// Bounds of the cache.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Sessions held at most (0 disables sessions).
    pub slots: usize,
    /// Partitions per session at most.
    pub max_partitions: usize,
    /// Idle time after which a session may be evicted by anyone.
    pub eviction_ms: i64,
}

#[derive(Debug)]
struct Cached {
    pos: FetchPosition,
    high_watermark: i64,
    log_start_offset: i64,
    seq: u64,
}

#[derive(Debug)]
struct Session {
    id: i32,
    epoch: i32,
    privileged: bool,
    uses_ids: bool,
    created_ms: i64,
    last_used_ms: i64,
    parts: HashMap<PartKey, Cached>,
    /// Iteration order: seq → partition.
    order: BTreeMap<u64, PartKey>,
    next_seq: u64,
}

impl Session {
    fn upsert(&mut self, key: PartKey, pos: FetchPosition) {
        if let Some(c) = self.parts.get_mut(&key) {
            c.pos = pos;
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, key.clone());
        self.parts.insert(
            key,
            Cached {
                pos,
                high_watermark: -1,
                log_start_offset: -1,
                seq,
            },
        );
    }

    fn remove(&mut self, key: &PartKey) {
        if let Some(c) = self.parts.remove(key) {
            self.order.remove(&c.seq);
        }
    }

    /// Kafka's `EvictableKey`: privileged, then size, then id.
    fn value(&self) -> (bool, usize, i32) {
        (self.privileged, self.parts.len(), self.id)
    }
}

#[derive(Debug)]
struct Inner {
    sessions: HashMap<i32, Session>,
    rng: u64,
}

/// The broker's fetch sessions.
#[derive(Debug)]
pub struct FetchSessionCache {
    limits: Limits,
    inner: Mutex<Inner>,
    evictions: AtomicU64,
    created: AtomicU64,
    incremental: AtomicU64,
}

/// Kafka's `nextEpoch`: wraps to 1, never to 0 or -1.
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        FINAL_EPOCH
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

impl FetchSessionCache {
    /// An empty cache; `seed` drives session ids.
    pub fn new(limits: Limits, seed: u64) -> FetchSessionCache {
        FetchSessionCache {
            limits,
            inner: Mutex::new(Inner {
                sessions: HashMap::new(),
                rng: seed,
            }),
            evictions: AtomicU64::new(0),
            created: AtomicU64::new(0),
            incremental: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decide how to serve a request (and apply its session changes).
    pub fn new_context(&self, req: &SessionRequest, now_ms: i64) -> Context {
        let mut inner = self.lock();
        if req.epoch == INITIAL_EPOCH || req.epoch == FINAL_EPOCH {
            if req.session_id != INVALID_SESSION_ID {
                inner.sessions.remove(&req.session_id);
            }
            return if req.epoch == FINAL_EPOCH {
                Context::Sessionless
            } else {
                Context::Full
            };
        }
        let Some(s) = inner.sessions.get_mut(&req.session_id) else {
            return Context::Error(code::FETCH_SESSION_ID_NOT_FOUND);
        };
        if s.epoch != req.epoch {
            return Context::Error(code::INVALID_FETCH_SESSION_EPOCH);
        }
        if s.uses_ids != req.uses_ids {
            return Context::Error(code::FETCH_SESSION_TOPIC_ID_ERROR);
        }
        for (k, pos) in &req.updates {
            s.upsert(k.clone(), *pos);
        }
        for k in &req.forgotten {
            s.remove(k);
        }
        if s.parts.is_empty() || s.parts.len() > self.limits.max_partitions {
            inner.sessions.remove(&req.session_id);
            return Context::Sessionless;
        }
        s.last_used_ms = now_ms;
        s.epoch = next_epoch(s.epoch);
        self.incremental.fetch_add(1, Relaxed);
        let parts = s
            .order
            .values()
            .map(|k| (k.clone(), s.parts[k].pos))
            .collect();
        Context::Incremental {
            id: req.session_id,
            parts,
        }
    }

    /// After a full fetch: create a session holding `parts` (with what the
    /// response said about each), evicting one if the cache is full and the
    /// policy allows. Returns the new session id, or 0.
    pub fn create(
        &self,
        privileged: bool,
        uses_ids: bool,
        parts: Vec<(PartKey, FetchPosition, PartitionNews)>,
        now_ms: i64,
    ) -> i32 {
        let size = parts.len();
        if self.limits.slots == 0 || size == 0 || size > self.limits.max_partitions {
            return INVALID_SESSION_ID;
        }
        let mut inner = self.lock();
        if inner.sessions.len() >= self.limits.slots
            && !self.try_evict(&mut inner, privileged, size, now_ms)
        {
            return INVALID_SESSION_ID;
        }
        let id = loop {
            let id = (splitmix64(&mut inner.rng) % (i32::MAX as u64 - 1)) as i32 + 1;
            if !inner.sessions.contains_key(&id) {
                break id;
            }
        };
        let mut s = Session {
            id,
            epoch: next_epoch(INITIAL_EPOCH),
            privileged,
            uses_ids,
            created_ms: now_ms,
            last_used_ms: now_ms,
            parts: HashMap::with_capacity(size),
            order: BTreeMap::new(),
            next_seq: 0,
        };
        for (k, pos, news) in parts {
            s.upsert(k.clone(), pos);
            if let Some(c) = s.parts.get_mut(&k) {
                c.high_watermark = if news.error { -1 } else { news.high_watermark };
                c.log_start_offset = news.log_start_offset;
            }
        }
        inner.sessions.insert(id, s);
        self.created.fetch_add(1, Relaxed);
        id
    }

    fn try_evict(&self, inner: &mut Inner, privileged: bool, size: usize, now_ms: i64) -> bool {
        let eviction_ms = self.limits.eviction_ms;
        let lru = inner
            .sessions
            .values()
            .min_by_key(|s| (s.last_used_ms, s.id))
            .map(|s| (s.id, s.last_used_ms));
        let victim = match lru {
            None => return false,
            Some((id, used)) if now_ms - used > eviction_ms => Some(id),
            Some(_) => inner
                .sessions
                .values()
                .filter(|s| {
                    let old = now_ms - s.created_ms > eviction_ms;
                    old || (privileged && !s.privileged)
                })
                .min_by_key(|s| s.value())
                .filter(|s| (privileged, size, 0) >= s.value())
                .map(|s| s.id),
        };
        match victim {
            Some(id) => {
                inner.sessions.remove(&id);
                self.evictions.fetch_add(1, Relaxed);
                true
            }
            None => false,
        }
    }

    /// After an incremental fetch of session `id` (partitions in the order
    /// [`Context::Incremental`] gave): which ones the response carries.
    /// Updates what the session remembers and moves partitions with news
    /// to the end of its order.
    pub fn finish_incremental(&self, id: i32, news: &[(PartKey, PartitionNews)]) -> Vec<bool> {
        let mut inner = self.lock();
        let Some(s) = inner.sessions.get_mut(&id) else {
            // Closed meanwhile: say everything, as a full response would.
            return vec![true; news.len()];
        };
        news.iter()
            .map(|(k, n)| {
                let Some(c) = s.parts.get_mut(k) else {
                    return true;
                };
                let mut must = n.records > 0 || n.preferred_replica;
                if c.high_watermark != n.high_watermark {
                    must = true;
                    c.high_watermark = n.high_watermark;
                }
                if c.log_start_offset != n.log_start_offset {
                    must = true;
                    c.log_start_offset = n.log_start_offset;
                }
                if n.error {
                    must = true;
                    // Report it again next time too.
                    c.high_watermark = -1;
                }
                if must {
                    let seq = s.next_seq;
                    s.next_seq += 1;
                    s.order.remove(&c.seq);
                    c.seq = seq;
                    s.order.insert(seq, k.clone());
                }
                must
            })
            .collect()
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Partitions held over all sessions.
    pub fn partitions(&self) -> usize {
        self.lock().sessions.values().map(|s| s.parts.len()).sum()
    }

    /// Sessions evicted so far.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Relaxed)
    }

    /// Append the `strata_fetch_session*` metrics.
    pub fn render_metrics(&self, o: &mut String) {
        use crate::metrics::write_metric;
        let (n, parts) = {
            let inner = self.lock();
            (
                inner.sessions.len(),
                inner
                    .sessions
                    .values()
                    .map(|s| s.parts.len())
                    .sum::<usize>(),
            )
        };
        write_metric(
            o,
            "strata_fetch_sessions",
            "gauge",
            "Incremental fetch sessions held (KIP-227).",
            n,
        );
        write_metric(
            o,
            "strata_fetch_session_partitions",
            "gauge",
            "Partitions cached over all fetch sessions.",
            parts,
        );
        write_metric(
            o,
            "strata_fetch_sessions_created_total",
            "counter",
            "Fetch sessions created.",
            self.created.load(Relaxed),
        );
        write_metric(
            o,
            "strata_fetch_session_incremental_total",
            "counter",
            "Incremental fetches served from a session.",
            self.incremental.load(Relaxed),
        );
        write_metric(
            o,
            "strata_fetch_session_evictions_total",
            "counter",
            "Fetch sessions evicted to make room for new ones.",
            self.evictions(),
        );
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(slots: usize) -> Limits {
        Limits {
            slots,
            max_partitions: 100,
            eviction_ms: 1000,
        }
    }

    fn key(p: i32) -> PartKey {
        (TopicKey::Name("t".into()), p)
    }

    fn pos(offset: i64) -> FetchPosition {
        FetchPosition {
            offset,
            max_bytes: 1024,
            leader_epoch: -1,
        }
    }

    fn news(records: usize, hw: i64) -> PartitionNews {
        PartitionNews {
            records,
            high_watermark: hw,
            log_start_offset: 0,
            error: false,
            preferred_replica: false,
        }
    }

    fn req(id: i32, epoch: i32, updates: Vec<(PartKey, FetchPosition)>) -> SessionRequest {
        SessionRequest {
            session_id: id,
            epoch,
            uses_ids: false,
            privileged: false,
            updates,
            forgotten: vec![],
        }
    }

    fn open(c: &FetchSessionCache, n: i32, now: i64) -> i32 {
        assert_eq!(c.new_context(&req(0, 0, vec![]), now), Context::Full);
        c.create(
            false,
            false,
            (0..n).map(|p| (key(p), pos(0), news(0, 10))).collect(),
            now,
        )
    }

    #[test]
    fn full_then_incremental_with_epochs() {
        let c = FetchSessionCache::new(limits(10), 7);
        let id = open(&c, 3, 0);
        assert_ne!(id, 0);
        assert_eq!(c.partitions(), 3);
        // Wrong epoch, unknown id.
        assert_eq!(
            c.new_context(&req(id, 2, vec![]), 1),
            Context::Error(code::INVALID_FETCH_SESSION_EPOCH)
        );
        assert_eq!(
            c.new_context(&req(id + 1, 1, vec![]), 1),
            Context::Error(code::FETCH_SESSION_ID_NOT_FOUND)
        );
        let mut r = req(id, 1, vec![(key(1), pos(5))]);
        r.uses_ids = true;
        assert_eq!(
            c.new_context(&r, 1),
            Context::Error(code::FETCH_SESSION_TOPIC_ID_ERROR)
        );
        // Epoch 1: the update is applied, every partition is read.
        let Context::Incremental { parts, .. } =
            c.new_context(&req(id, 1, vec![(key(1), pos(5))]), 1)
        else {
            panic!("not incremental")
        };
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1], (key(1), pos(5)));
        // Only partitions with news are kept; the one with data moves last.
        let keep = c.finish_incremental(
            id,
            &[
                (key(0), news(0, 10)),
                (key(1), news(100, 10)),
                (key(2), news(0, 11)),
            ],
        );
        assert_eq!(keep, vec![false, true, true]);
        let Context::Incremental { parts, .. } = c.new_context(&req(id, 2, vec![]), 2) else {
            panic!("not incremental")
        };
        let order: Vec<i32> = parts.iter().map(|(k, _)| k.1).collect();
        assert_eq!(order, vec![0, 1, 2]);
        // The same epoch again is stale now.
        assert_eq!(
            c.new_context(&req(id, 2, vec![]), 3),
            Context::Error(code::INVALID_FETCH_SESSION_EPOCH)
        );
    }

    #[test]
    fn errors_are_reported_every_time() {
        let c = FetchSessionCache::new(limits(10), 1);
        let id = open(&c, 1, 0);
        let mut n = news(0, 10);
        n.error = true;
        for epoch in 1..4 {
            assert!(matches!(
                c.new_context(&req(id, epoch, vec![]), 0),
                Context::Incremental { .. }
            ));
            assert_eq!(c.finish_incremental(id, &[(key(0), n)]), vec![true]);
        }
    }

    #[test]
    fn forgetting_every_partition_closes_the_session() {
        let c = FetchSessionCache::new(limits(10), 1);
        let id = open(&c, 2, 0);
        let mut r = req(id, 1, vec![]);
        r.forgotten = vec![key(0), key(1)];
        assert_eq!(c.new_context(&r, 1), Context::Sessionless);
        assert!(c.is_empty());
        // A full fetch with FINAL_EPOCH closes a session and opens none.
        let id = open(&c, 2, 0);
        assert_eq!(
            c.new_context(&req(id, FINAL_EPOCH, vec![]), 1),
            Context::Sessionless
        );
        assert!(c.is_empty());
    }

    #[test]
    fn bounded_partitions_per_session() {
        let c = FetchSessionCache::new(
            Limits {
                slots: 10,
                max_partitions: 2,
                eviction_ms: 1000,
            },
            1,
        );
        assert_eq!(open(&c, 3, 0), 0);
        let id = open(&c, 2, 0);
        assert_ne!(id, 0);
        assert_eq!(
            c.new_context(&req(id, 1, vec![(key(7), pos(0))]), 1),
            Context::Sessionless
        );
        assert!(c.is_empty());
    }

    #[test]
    fn eviction_follows_kafka() {
        let c = FetchSessionCache::new(limits(2), 3);
        let a = open(&c, 5, 0);
        let b = open(&c, 10, 100);
        assert!(a != 0 && b != 0);
        // Full, both young and recently used: no room for a consumer.
        assert_eq!(open(&c, 50, 200), 0);
        assert_eq!(c.evictions(), 0);
        // Older than eviction_ms but used recently: a bigger new session
        // evicts the least valuable (smallest) one, a smaller one cannot.
        for (id, epoch) in [(a, 1), (b, 1)] {
            assert!(matches!(
                c.new_context(&req(id, epoch, vec![]), 1500),
                Context::Incremental { .. }
            ));
        }
        assert_eq!(open(&c, 3, 1600), 0);
        let d = open(&c, 6, 1600);
        assert_ne!(d, 0);
        assert_eq!(c.evictions(), 1);
        assert_eq!(
            c.new_context(&req(a, 2, vec![]), 1601),
            Context::Error(code::FETCH_SESSION_ID_NOT_FOUND)
        );
        // Stale (unused > eviction_ms): the least recently used goes first,
        // whatever its size.
        assert!(matches!(
            c.new_context(&req(d, 1, vec![]), 2000),
            Context::Incremental { .. }
        ));
        let e = open(&c, 1, 2600);
        assert_ne!(e, 0);
        assert_eq!(c.evictions(), 2);
        assert_eq!(
            c.new_context(&req(b, 2, vec![]), 2601),
            Context::Error(code::FETCH_SESSION_ID_NOT_FOUND)
        );
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn privileged_sessions_evict_young_consumer_sessions() {
        let c = FetchSessionCache::new(limits(1), 3);
        let a = open(&c, 50, 0);
        assert_ne!(a, 0);
        let p = c.create(true, false, vec![(key(0), pos(0), news(0, 1))], 10);
        assert_ne!(p, 0);
        assert_eq!(c.evictions(), 1);
        // And a consumer cannot evict a young privileged one.
        assert_eq!(open(&c, 99, 20), 0);
    }

    #[test]
    fn epochs_wrap_to_one() {
        assert_eq!(next_epoch(0), 1);
        assert_eq!(next_epoch(i32::MAX), 1);
        assert_eq!(next_epoch(-1), -1);
    }

    #[test]
    fn disabled_cache_opens_nothing() {
        let c = FetchSessionCache::new(limits(0), 3);
        assert_eq!(open(&c, 1, 0), 0);
    }
}
