//! Multipart uploads that never leave parts behind.
//!
//! An S3 multipart upload that is neither completed nor aborted keeps its
//! parts (billed, invisible to listings) until a lifecycle rule removes
//! them. [`Multipart`] owns the upload and aborts it on every path that does
//! not complete it: [`Multipart::abort`] on errors and timeouts the caller
//! sees, and `Drop` (a spawned abort) when the future driving it is
//! cancelled, e.g. by a deadline around [`Multipart::complete`].

use object_store::{MultipartUpload, PutPayload, PutResult};
use tokio::task::JoinSet;

/// A multipart upload with at most `max_inflight` parts uploading at once.
pub struct Multipart {
    upload: Option<Box<dyn MultipartUpload>>,
    parts: JoinSet<object_store::Result<()>>,
    max_inflight: usize,
    key: String,
}

fn join_error(e: tokio::task::JoinError) -> object_store::Error {
    object_store::Error::JoinError { source: e }
}

impl Multipart {
    pub fn new(upload: Box<dyn MultipartUpload>, max_inflight: usize, key: &str) -> Multipart {
        Multipart {
            upload: Some(upload),
            parts: JoinSet::new(),
            max_inflight: max_inflight.max(1),
            key: key.to_string(),
        }
    }

    async fn join_one(&mut self) -> object_store::Result<()> {
        match self.parts.join_next().await {
            Some(Ok(r)) => r,
            Some(Err(e)) => Err(join_error(e)),
            None => Ok(()),
        }
    }

    /// Start uploading the next part, first waiting for room.
    pub async fn put_part(&mut self, data: PutPayload) -> object_store::Result<()> {
        while self.parts.len() >= self.max_inflight {
            self.join_one().await?;
        }
        let Some(upload) = self.upload.as_mut() else {
            return Err(object_store::Error::Generic {
                store: "multipart",
                source: "upload already finished".into(),
            });
        };
        self.parts.spawn(upload.put_part(data));
        Ok(())
    }

    /// Wait until every part started has uploaded.
    pub async fn flush(&mut self) -> object_store::Result<()> {
        while !self.parts.is_empty() {
            self.join_one().await?;
        }
        Ok(())
    }

    /// Upload the remaining parts and complete: the object appears. On an
    /// error the upload is aborted (by `Drop`), as it is when this future is
    /// dropped before it finishes.
    pub async fn complete(mut self) -> object_store::Result<PutResult> {
        self.flush().await?;
        let upload = self.upload.as_mut().expect("present until completed");
        let r = upload.complete().await?;
        self.upload = None;
        Ok(r)
    }

    /// Abort now: the parts uploaded so far are deleted.
    pub async fn abort(mut self) -> object_store::Result<()> {
        self.parts.abort_all();
        while self.parts.join_next().await.is_some() {}
        match self.upload.take() {
            Some(mut u) => u.abort().await,
            None => Ok(()),
        }
    }
}

impl Drop for Multipart {
    fn drop(&mut self) {
        let Some(mut upload) = self.upload.take() else {
            return;
        };
        self.parts.abort_all();
        let key = std::mem::take(&mut self.key);
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move {
                    if let Err(e) = upload.abort().await {
                        tracing::warn!(key, error = %e, "could not abort a multipart upload; a bucket lifecycle rule must remove its parts");
                    }
                });
            }
            Err(_) => {
                tracing::warn!(
                    key,
                    "multipart upload dropped outside a runtime; not aborted"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objstore::fault::{Fault, FaultStore, Op, Rule};
    use bytes::Bytes;
    use object_store::path::Path;
    use object_store::ObjectStoreExt;
    use std::time::Duration;

    fn part() -> PutPayload {
        Bytes::from(vec![7u8; 1024]).into()
    }

    #[tokio::test(start_paused = true)]
    async fn completes_and_counts() {
        let fs = FaultStore::memory(1);
        let p = Path::from("m/ok");
        let mut m = Multipart::new(fs.put_multipart(&p).await.unwrap(), 2, "m/ok");
        for _ in 0..5 {
            m.put_part(part()).await.unwrap();
        }
        m.complete().await.unwrap();
        assert_eq!(fs.inner().head(&p).await.unwrap().size, 5 * 1024);
        assert_eq!(fs.multipart_counts(), (1, 1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_part_is_aborted_explicitly() {
        let fs = FaultStore::memory(1);
        fs.inject(Rule::new(Op::PutPart, "m/", Fault::Error).times(1));
        let p = Path::from("m/bad");
        let mut m = Multipart::new(fs.put_multipart(&p).await.unwrap(), 1, "m/bad");
        m.put_part(part()).await.unwrap();
        let e = m.put_part(part()).await;
        assert!(e.is_err(), "the first part's error surfaces");
        m.abort().await.unwrap();
        assert_eq!(fs.multipart_counts(), (1, 0, 1));
        assert!(fs.inner().head(&p).await.is_err(), "no object appeared");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_completion_aborts_on_drop() {
        let fs = FaultStore::memory(1);
        fs.inject(Rule::new(Op::PutPart, "m/", Fault::Hang));
        let p = Path::from("m/slow");
        let mut m = Multipart::new(fs.put_multipart(&p).await.unwrap(), 2, "m/slow");
        m.put_part(part()).await.unwrap();
        let r = tokio::time::timeout(Duration::from_secs(1), m.complete()).await;
        assert!(
            r.is_err(),
            "the hung part holds completion past the deadline"
        );
        // The abort runs on a spawned task: wait for it, bounded.
        tokio::time::timeout(Duration::from_secs(5), async {
            while fs.multipart_counts().2 == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("aborted after the drop");
        assert_eq!(fs.multipart_counts(), (1, 0, 1));
        assert!(fs.inner().head(&p).await.is_err());
    }
}
