//! Idempotent-producer state of one partition: per producer id, its epoch and
//! the last five batches' sequence ranges, exactly what Kafka keeps to
//! acknowledge a retried batch without writing it twice and to refuse a gap.

use std::collections::{HashMap, VecDeque};

use super::batch::BatchHeader;
use crate::meta::tier::TxnMark;

/// How many recent batches are remembered per producer (Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence).
pub const BATCHES_KEPT: usize = 5;
/// Producers remembered per partition; the least recently used is dropped
/// beyond this, which only costs it duplicate detection for old batches.
pub const MAX_PRODUCERS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
    last_offset: i64,
}

#[derive(Debug, Clone, Default)]
struct Entry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
    last_used: u64,
}

/// Outcome of checking a batch against the producer state.
/// One producer of a partition (DescribeProducers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSummary {
    pub producer_id: i64,
    pub epoch: i16,
    /// Sequence of its last record here (-1: none since its epoch began).
    pub last_sequence: i32,
    /// Offset of its last record here (-1: none).
    pub last_offset: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// Not idempotent, or next in sequence: append it.
    Append,
    /// Already written at these offsets: acknowledge, do not write.
    Duplicate { base_offset: i64, last_offset: i64 },
}

/// Refusals, with their Kafka codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SeqError {
    #[error("out of order sequence: producer {producer_id} expected {expected}, got {got}")]
    OutOfOrder {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    #[error("producer {producer_id} epoch {got} is older than {current}")]
    StaleEpoch {
        producer_id: i64,
        got: i16,
        current: i16,
    },
}

impl SeqError {
    pub fn kafka_code(&self) -> i16 {
        match self {
            SeqError::OutOfOrder { .. } => 45, // OUT_OF_ORDER_SEQUENCE_NUMBER
            SeqError::StaleEpoch { .. } => 47, // INVALID_PRODUCER_EPOCH
        }
    }
}

/// All producers of one partition.
#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, Entry>,
    tick: u64,
}

fn next_seq(s: i32) -> i32 {
    if s == i32::MAX {
        0
    } else {
        s + 1
    }
}

impl ProducerStates {
    /// Check a batch before it is appended.
    pub fn check(&self, h: &BatchHeader) -> Result<SeqCheck, SeqError> {
        if !h.has_producer_id() || h.base_sequence < 0 {
            return Ok(SeqCheck::Append);
        }
        let Some(e) = self.producers.get(&h.producer_id) else {
            // Unknown producer (new, or state expired): accept, as Kafka does.
            return Ok(SeqCheck::Append);
        };
        if h.producer_epoch < e.epoch {
            return Err(SeqError::StaleEpoch {
                producer_id: h.producer_id,
                got: h.producer_epoch,
                current: e.epoch,
            });
        }
        if h.producer_epoch > e.epoch {
            // A bumped epoch restarts sequences at 0.
            return if h.base_sequence == 0 {
                Ok(SeqCheck::Append)
            } else {
                Err(SeqError::OutOfOrder {
                    producer_id: h.producer_id,
                    expected: 0,
                    got: h.base_sequence,
                })
            };
        }
        let last_seq = h.last_sequence();
        if let Some(b) = e
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return Ok(SeqCheck::Duplicate {
                base_offset: b.base_offset,
                last_offset: b.last_offset,
            });
        }
        let expected = e.batches.back().map(|b| next_seq(b.last_seq)).unwrap_or(0);
        if h.base_sequence != expected {
            return Err(SeqError::OutOfOrder {
                producer_id: h.producer_id,
                expected,
                got: h.base_sequence,
            });
        }
        Ok(SeqCheck::Append)
    }

    /// Record a batch that was appended at `base_offset` (or found on disk
    /// during recovery).
    pub fn record(&mut self, h: &BatchHeader, base_offset: i64) {
        if !h.has_producer_id() || h.base_sequence < 0 {
            return;
        }
        self.tick += 1;
        let tick = self.tick;
        let e = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != e.epoch {
            e.epoch = h.producer_epoch;
            e.batches.clear();
        }
        e.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            base_offset,
            last_offset: base_offset + h.last_offset_delta as i64,
        });
        while e.batches.len() > BATCHES_KEPT {
            e.batches.pop_front();
        }
        e.last_used = tick;
        if self.producers.len() > MAX_PRODUCERS {
            if let Some((&victim, _)) = self.producers.iter().min_by_key(|(_, e)| e.last_used) {
                self.producers.remove(&victim);
            }
        }
    }

    /// A transaction marker of `producer_id` at `epoch`: older epochs are
    /// fenced from now on (an abort on timeout or a new instance bumps it).
    pub fn record_marker(&mut self, producer_id: i64, epoch: i16) {
        self.tick += 1;
        let tick = self.tick;
        let e = self.producers.entry(producer_id).or_default();
        if epoch > e.epoch {
            e.epoch = epoch;
            e.batches.clear();
        }
        e.last_used = tick;
    }

    /// The epoch this partition knows for a producer.
    pub fn epoch_of(&self, producer_id: i64) -> Option<i16> {
        self.producers.get(&producer_id).map(|e| e.epoch)
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// The known producers (at most `max`, by id), as DescribeProducers
    /// reports them.
    pub fn summaries(&self, max: usize) -> Vec<ProducerSummary> {
        let mut out: Vec<ProducerSummary> = self
            .producers
            .iter()
            .map(|(id, e)| ProducerSummary {
                producer_id: *id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_offset: e.batches.back().map_or(-1, |b| b.last_offset),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out.truncate(max);
        out
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch;

    fn header(pid: i64, epoch: i16, seq: i32, n: usize) -> BatchHeader {
        let recs: Vec<batch::SimpleRecord> = (0..n).map(|_| (None, Some(&b"v"[..]), 0)).collect();
        let b = batch::build(0, &recs, Some((pid, epoch, seq)));
        BatchHeader::parse(&b).unwrap()
    }

    #[test]
    fn in_order_duplicate_and_gap() {
        let mut s = ProducerStates::default();
        let h0 = header(7, 0, 0, 3);
        assert_eq!(s.check(&h0), Ok(SeqCheck::Append));
        s.record(&h0, 100);
        // retry of the same batch
        assert_eq!(
            s.check(&h0),
            Ok(SeqCheck::Duplicate {
                base_offset: 100,
                last_offset: 102
            })
        );
        let h1 = header(7, 0, 3, 2);
        assert_eq!(s.check(&h1), Ok(SeqCheck::Append));
        s.record(&h1, 103);
        let gap = header(7, 0, 9, 1);
        assert_eq!(
            s.check(&gap),
            Err(SeqError::OutOfOrder {
                producer_id: 7,
                expected: 5,
                got: 9
            })
        );
        assert_eq!(s.check(&gap).unwrap_err().kafka_code(), 45);
    }

    #[test]
    fn epochs_fence_and_reset() {
        let mut s = ProducerStates::default();
        let h = header(1, 3, 0, 1);
        s.record(&h, 0);
        assert!(matches!(
            s.check(&header(1, 2, 1, 1)),
            Err(SeqError::StaleEpoch { .. })
        ));
        assert_eq!(s.check(&header(1, 4, 0, 1)), Ok(SeqCheck::Append));
        assert!(matches!(
            s.check(&header(1, 4, 5, 1)),
            Err(SeqError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn only_last_five_batches_are_deduplicated() {
        let mut s = ProducerStates::default();
        let mut first = None;
        for seq in 0..7 {
            let h = header(9, 0, seq, 1);
            if seq == 0 {
                first = Some(h);
            }
            s.record(&h, seq as i64);
        }
        // the first batch fell out of the window: now it is out of order
        assert!(s.check(&first.unwrap()).is_err());
        assert!(matches!(
            s.check(&header(9, 0, 6, 1)),
            Ok(SeqCheck::Duplicate { .. })
        ));
    }

    #[test]
    fn non_idempotent_batches_always_append() {
        let s = ProducerStates::default();
        let recs: [batch::SimpleRecord; 1] = [(None, Some(b"x"), 0)];
        let b = batch::build(0, &recs, None);
        assert_eq!(
            s.check(&BatchHeader::parse(&b).unwrap()),
            Ok(SeqCheck::Append)
        );
    }
}

/// Transactions open in a partition's log (producer id -> first offset),
/// turning stored batches into the [`TxnMark`]s a WAL commit carries.
#[derive(Debug, Default, Clone)]
pub struct OpenTxns {
    open: HashMap<i64, i64>,
}

impl OpenTxns {
    pub fn from_map(m: &std::collections::BTreeMap<i64, i64>) -> Self {
        OpenTxns {
            open: m.iter().map(|(k, v)| (*k, *v)).collect(),
        }
    }

    /// The mark of a batch stored at `h.base_offset` (`data` is the batch).
    pub fn mark(&mut self, h: &BatchHeader, data: &[u8]) -> Option<TxnMark> {
        if !h.is_transactional() || !h.has_producer_id() {
            return None;
        }
        if h.is_control() {
            let commit = super::batch::control_commit(data)?;
            self.open.remove(&h.producer_id);
            return Some(TxnMark::End {
                producer_id: h.producer_id,
                offset: h.base_offset,
                commit,
            });
        }
        if self.open.contains_key(&h.producer_id) {
            return None;
        }
        self.open.insert(h.producer_id, h.base_offset);
        Some(TxnMark::Begin {
            producer_id: h.producer_id,
            offset: h.base_offset,
        })
    }

    pub fn is_open(&self, producer_id: i64) -> bool {
        self.open.contains_key(&producer_id)
    }

    /// First offset of the open transaction of `producer_id`.
    pub fn start_of(&self, producer_id: i64) -> Option<i64> {
        self.open.get(&producer_id).copied()
    }
}
