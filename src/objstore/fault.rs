//! A fault-injecting [`ObjectStore`] for tests of the failure paths.
//!
//! [`FaultStore`] wraps a real store (`InMemory`, `LocalFileSystem`) and,
//! by operation and key prefix, injects: added latency, 5xx-style errors
//! (`object_store::Error::Generic`), hangs (a future that never resolves, so
//! the caller's deadline fires), lost responses (the write is applied, then
//! an error is returned), partial listings (the stream fails after k items)
//! and slow bodies (GET streams that yield small chunks with a delay).
//! Rules fire a scripted number of times or forever, each with a
//! probability drawn from a seeded generator, so a schedule is reproducible.
//! Every call and every injected fault is counted for assertions.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};
use parking_lot::Mutex;

use super::retry::Rng;

/// An operation faults can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Single-request puts (`put_opts`) and multipart completion.
    Put,
    /// One part of a multipart upload.
    PutPart,
    /// GETs, ranged or whole.
    Get,
    /// HEAD requests.
    Head,
    Delete,
    List,
}

/// What goes wrong.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Wait this long, then run the operation normally.
    Latency(Duration),
    /// Fail at once with a 5xx-style `Generic` error; nothing is applied.
    Error,
    /// Never answer: only the caller's deadline ends the call.
    Hang,
    /// Apply the write to the inner store, then report an error (the
    /// response was lost on the way back). Puts and deletes.
    LostResponse,
    /// Listing: yield this many items, then fail.
    ListErrorAfter(usize),
    /// GET: the body arrives in `chunk`-byte pieces, `delay` apart.
    SlowBody { chunk: usize, delay: Duration },
}

/// One injection rule.
#[derive(Debug, Clone)]
pub struct Rule {
    op: Op,
    prefix: String,
    fault: Fault,
    remaining: Option<u64>,
    probability: f64,
}

impl Rule {
    /// `fault` on every `op` whose key starts with `prefix` (relative to the
    /// wrapped store's root), forever, until [`Rule::times`] limits it.
    pub fn new(op: Op, prefix: &str, fault: Fault) -> Rule {
        Rule {
            op,
            prefix: prefix.to_string(),
            fault,
            remaining: None,
            probability: 1.0,
        }
    }

    /// Fire at most `n` times.
    pub fn times(mut self, n: u64) -> Rule {
        self.remaining = Some(n);
        self
    }

    /// Fire on a matching call with probability `p` (seeded draw).
    pub fn probability(mut self, p: f64) -> Rule {
        self.probability = p;
        self
    }
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    rng: Option<Rng>,
    calls: HashMap<Op, u64>,
    injected: HashMap<Op, u64>,
    multipart_started: u64,
    multipart_completed: u64,
    multipart_aborted: u64,
}

/// The fault-injecting wrapper. Cheap to clone handles via `Arc`.
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

fn injected_error(op: Op, path: &Path) -> object_store::Error {
    object_store::Error::Generic {
        store: "FaultStore",
        source: format!("injected 503 Slow Down on {op:?} {path}").into(),
    }
}

impl FaultStore {
    /// Wrap `inner`; `seed` drives the probabilistic rules.
    pub fn new(inner: Arc<dyn ObjectStore>, seed: u64) -> Arc<FaultStore> {
        Arc::new(FaultStore {
            inner,
            state: Arc::new(Mutex::new(State {
                rng: Some(Rng::new(seed)),
                ..State::default()
            })),
        })
    }

    /// A fault store over a fresh `InMemory`.
    pub fn memory(seed: u64) -> Arc<FaultStore> {
        FaultStore::new(Arc::new(object_store::memory::InMemory::new()), seed)
    }

    /// The wrapped store (no faults).
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// Add a rule; earlier rules are matched first.
    pub fn inject(&self, rule: Rule) {
        self.state.lock().rules.push(rule);
    }

    /// Remove every rule (the store heals).
    pub fn heal(&self) {
        self.state.lock().rules.clear();
    }

    /// Calls of `op` seen, faulty or not.
    pub fn calls(&self, op: Op) -> u64 {
        self.state.lock().calls.get(&op).copied().unwrap_or(0)
    }

    /// Faults injected into `op` calls.
    pub fn injected(&self, op: Op) -> u64 {
        self.state.lock().injected.get(&op).copied().unwrap_or(0)
    }

    /// Multipart uploads (started, completed, aborted).
    pub fn multipart_counts(&self) -> (u64, u64, u64) {
        let s = self.state.lock();
        (
            s.multipart_started,
            s.multipart_completed,
            s.multipart_aborted,
        )
    }

    /// Count the call and pick the fault of the first matching rule.
    fn decide(&self, op: Op, path: &Path) -> Option<Fault> {
        decide(&self.state, op, path)
    }
}

fn decide(state: &Mutex<State>, op: Op, path: &Path) -> Option<Fault> {
    let mut s = state.lock();
    *s.calls.entry(op).or_default() += 1;
    let key = path.as_ref();
    let State { rules, rng, .. } = &mut *s;
    let rng = rng.get_or_insert_with(|| Rng::new(0));
    let mut hit = None;
    for r in rules.iter_mut() {
        if r.op != op || !key.starts_with(&r.prefix) || r.remaining == Some(0) {
            continue;
        }
        if r.probability < 1.0 && rng.unit() >= r.probability {
            continue;
        }
        if let Some(n) = &mut r.remaining {
            *n -= 1;
        }
        hit = Some(r.fault.clone());
        break;
    }
    if hit.is_some() {
        *s.injected.entry(op).or_default() += 1;
    }
    hit
}

/// Run the pre-call part of a fault: `Some(result)` ends the call.
async fn before<T>(fault: &Option<Fault>, op: Op, path: &Path) -> Option<object_store::Result<T>> {
    match fault {
        Some(Fault::Latency(d)) => {
            tokio::time::sleep(*d).await;
            None
        }
        Some(Fault::Error) => Some(Err(injected_error(op, path))),
        Some(Fault::Hang) => std::future::pending().await,
        _ => None,
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let f = self.decide(Op::Put, location);
        if let Some(r) = before(&f, Op::Put, location).await {
            return r;
        }
        let r = self.inner.put_opts(location, payload, opts).await;
        match f {
            Some(Fault::LostResponse) if r.is_ok() => Err(injected_error(Op::Put, location)),
            _ => r,
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let f = self.decide(Op::Put, location);
        if let Some(r) = before(&f, Op::Put, location).await {
            return r;
        }
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        self.state.lock().multipart_started += 1;
        Ok(Box::new(FaultUpload {
            inner,
            path: location.clone(),
            state: self.state.clone(),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let op = if options.head { Op::Head } else { Op::Get };
        let f = self.decide(op, location);
        if let Some(r) = before(&f, op, location).await {
            return r;
        }
        let r = self.inner.get_opts(location, options).await?;
        match f {
            Some(Fault::SlowBody { chunk, delay }) => {
                let chunk = chunk.max(1);
                let meta = r.meta.clone();
                let range = r.range.clone();
                let attributes = r.attributes.clone();
                let body = r
                    .into_stream()
                    .map_ok(move |b: Bytes| {
                        let pieces: Vec<object_store::Result<Bytes>> = (0..b.len())
                            .step_by(chunk)
                            .map(|at| Ok(b.slice(at..(at + chunk).min(b.len()))))
                            .collect();
                        futures_util::stream::iter(pieces)
                    })
                    .try_flatten()
                    .then(move |piece| async move {
                        tokio::time::sleep(delay).await;
                        piece
                    })
                    .boxed();
                Ok(GetResult {
                    payload: GetResultPayload::Stream(body),
                    meta,
                    range,
                    attributes,
                    extensions: Default::default(),
                })
            }
            _ => Ok(r),
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let inner = self.inner.clone();
        let state = self.state.clone();
        locations
            .then(move |loc| {
                let inner = inner.clone();
                let state = state.clone();
                async move {
                    let loc = loc?;
                    let f = decide(&state, Op::Delete, &loc);
                    if let Some(r) = before(&f, Op::Delete, &loc).await {
                        return r;
                    }
                    let once = futures_util::stream::once({
                        let l = loc.clone();
                        async move { Ok(l) }
                    })
                    .boxed();
                    let r = inner.delete_stream(once).try_collect::<Vec<_>>().await;
                    match (f, r) {
                        (Some(Fault::LostResponse), Ok(_)) => Err(injected_error(Op::Delete, &loc)),
                        (_, Ok(_)) => Ok(loc),
                        (_, Err(e)) => Err(e),
                    }
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let s = self.inner.list(prefix);
        self.faulty_list(prefix, s)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let s = self.inner.list_with_offset(prefix, offset);
        self.faulty_list(prefix, s)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let root = Path::from("");
        let p = prefix.unwrap_or(&root);
        let f = self.decide(Op::List, p);
        if let Some(r) = before(&f, Op::List, p).await {
            return r;
        }
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let f = self.decide(Op::Put, to);
        if let Some(r) = before(&f, Op::Put, to).await {
            return r;
        }
        self.inner.copy_opts(from, to, options).await
    }
}

impl FaultStore {
    fn faulty_list(
        &self,
        prefix: Option<&Path>,
        s: BoxStream<'static, object_store::Result<ObjectMeta>>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let root = Path::from("");
        let p = prefix.cloned().unwrap_or(root);
        let f = self.decide(Op::List, &p);
        match f {
            None => s,
            Some(Fault::Latency(d)) => futures_util::stream::once(tokio::time::sleep(d))
                .map(|_| futures_util::stream::empty().boxed())
                .chain(futures_util::stream::once(async move { s }))
                .flatten()
                .boxed(),
            Some(Fault::Hang) => futures_util::stream::pending().boxed(),
            Some(Fault::ListErrorAfter(k)) => {
                let err = injected_error(Op::List, &p);
                s.take(k)
                    .chain(futures_util::stream::once(async move { Err(err) }))
                    .boxed()
            }
            Some(_) => {
                let err = injected_error(Op::List, &p);
                futures_util::stream::once(async move { Err(err) }).boxed()
            }
        }
    }
}

/// A multipart upload whose parts can fail or hang, and whose completion
/// and abort are counted.
#[derive(Debug)]
struct FaultUpload {
    inner: Box<dyn MultipartUpload>,
    path: Path,
    state: Arc<Mutex<State>>,
}

#[async_trait]
impl MultipartUpload for FaultUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let f = decide(&self.state, Op::PutPart, &self.path);
        let part = self.inner.put_part(data);
        let path = self.path.clone();
        Box::pin(async move {
            if let Some(r) = before(&f, Op::PutPart, &path).await {
                return r;
            }
            part.await
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let f = decide(&self.state, Op::Put, &self.path);
        if let Some(r) = before(&f, Op::Put, &self.path).await {
            return r;
        }
        let r = self.inner.complete().await;
        if r.is_ok() {
            self.state.lock().multipart_completed += 1;
        }
        match f {
            Some(Fault::LostResponse) if r.is_ok() => Err(injected_error(Op::Put, &self.path)),
            _ => r,
        }
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.state.lock().multipart_aborted += 1;
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[tokio::test(start_paused = true)]
    async fn rules_fire_by_op_prefix_and_count() {
        let fs = FaultStore::memory(1);
        fs.inject(Rule::new(Op::Put, "wal/", Fault::Error).times(2));
        let p = Path::from("wal/1");
        assert!(fs.put(&p, Bytes::from_static(b"a").into()).await.is_err());
        assert!(fs.put(&p, Bytes::from_static(b"a").into()).await.is_err());
        fs.put(&p, Bytes::from_static(b"a").into()).await.unwrap();
        // Other prefixes are untouched.
        fs.put(&Path::from("segments/x"), Bytes::from_static(b"b").into())
            .await
            .unwrap();
        assert_eq!((fs.calls(Op::Put), fs.injected(Op::Put)), (4, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn lost_response_applies_the_write() {
        let fs = FaultStore::memory(1);
        fs.inject(Rule::new(Op::Put, "", Fault::LostResponse).times(1));
        fs.inject(Rule::new(Op::Delete, "", Fault::LostResponse).times(1));
        let p = Path::from("k");
        assert!(fs.put(&p, Bytes::from_static(b"v").into()).await.is_err());
        assert_eq!(
            &fs.inner().get(&p).await.unwrap().bytes().await.unwrap()[..],
            b"v"
        );
        assert!(fs.delete(&p).await.is_err());
        assert!(fs.inner().head(&p).await.is_err(), "the delete was applied");
    }

    #[tokio::test(start_paused = true)]
    async fn partial_listing_and_slow_body() {
        let fs = FaultStore::memory(1);
        for i in 0..5 {
            fs.put(
                &Path::from(format!("d/{i}")),
                Bytes::from_static(b"0123456789").into(),
            )
            .await
            .unwrap();
        }
        fs.inject(Rule::new(Op::List, "d", Fault::ListErrorAfter(2)).times(1));
        let items: Vec<_> = fs.list(Some(&Path::from("d"))).collect().await;
        assert_eq!(items.len(), 3);
        assert!(items[..2].iter().all(|r| r.is_ok()) && items[2].is_err());
        assert_eq!(fs.list(Some(&Path::from("d"))).count().await, 5);

        fs.inject(Rule::new(
            Op::Get,
            "d/1",
            Fault::SlowBody {
                chunk: 3,
                delay: Duration::from_secs(1),
            },
        ));
        let started = tokio::time::Instant::now();
        let b = fs.get_range(&Path::from("d/1"), 0..10).await.unwrap();
        assert_eq!(&b[..], b"0123456789");
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(4),
            "4 chunks, 1 s apart"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn seeded_probability_is_reproducible() {
        let run = |seed| async move {
            let fs = FaultStore::memory(seed);
            fs.inject(Rule::new(Op::Put, "", Fault::Error).probability(0.5));
            let mut out = Vec::new();
            for i in 0..32 {
                let p = Path::from(format!("k{i}"));
                out.push(fs.put(&p, Bytes::new().into()).await.is_ok());
            }
            out
        };
        let a = run(42).await;
        assert_eq!(a, run(42).await);
        assert!(a.iter().any(|ok| *ok) && a.iter().any(|ok| !*ok));
    }
}
