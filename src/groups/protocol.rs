//! The "consumer" embedded protocol: the subscription members put in
//! JoinGroup metadata and the assignment the leader hands out in SyncGroup
//! (`ConsumerProtocolSubscription` / `ConsumerProtocolAssignment`, each
//! prefixed by an i16 version). The coordinator reads them only to know which
//! topics a group consumes and to show assignments; a payload it cannot
//! decode is passed through untouched.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;

/// Protocol type of Kafka consumers.
pub const CONSUMER: &str = "consumer";
/// Highest version of the embedded schemas this build knows; newer versions
/// only append fields, so they decode with it.
const MAX_KNOWN_VERSION: i16 = 3;

fn version(buf: &mut Bytes) -> Option<i16> {
    if buf.remaining() < 2 {
        return None;
    }
    let v = buf.get_i16();
    (v >= 0).then_some(v.min(MAX_KNOWN_VERSION))
}

/// Topics of a consumer subscription, if it decodes.
pub fn subscription_topics(metadata: &Bytes) -> Option<Vec<String>> {
    let mut buf = metadata.clone();
    let v = version(&mut buf)?;
    let s = ConsumerProtocolSubscription::decode(&mut buf, v).ok()?;
    Some(s.topics.iter().map(|t| t.to_string()).collect())
}

/// (topic, partitions) of a consumer assignment, if it decodes. An empty
/// payload is an empty assignment.
pub fn assignment_partitions(assignment: &Bytes) -> Option<Vec<(String, Vec<i32>)>> {
    if assignment.is_empty() {
        return Some(Vec::new());
    }
    let mut buf = assignment.clone();
    let v = version(&mut buf)?;
    let a = ConsumerProtocolAssignment::decode(&mut buf, v).ok()?;
    Some(
        a.assigned_partitions
            .iter()
            .map(|tp| (tp.topic.0.to_string(), tp.partitions.clone()))
            .collect(),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    pub fn subscription(version: i16, topics: &[&str]) -> Bytes {
        let s = ConsumerProtocolSubscription::default().with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string(t.to_string()))
                .collect(),
        );
        let mut b = BytesMut::new();
        b.put_i16(version);
        s.encode(&mut b, version.min(MAX_KNOWN_VERSION)).unwrap();
        b.freeze()
    }

    pub fn assignment(version: i16, parts: &[(&str, &[i32])]) -> Bytes {
        let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
            parts
                .iter()
                .map(|(t, p)| {
                    TopicPartition::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(p.to_vec())
                })
                .collect(),
        );
        let mut b = BytesMut::new();
        b.put_i16(version);
        a.encode(&mut b, version.min(MAX_KNOWN_VERSION)).unwrap();
        b.freeze()
    }

    #[test]
    fn decodes_every_version_and_refuses_garbage() {
        for v in 0..=5 {
            assert_eq!(
                subscription_topics(&subscription(v, &["a", "b"])),
                Some(vec!["a".to_string(), "b".to_string()])
            );
            assert_eq!(
                assignment_partitions(&assignment(v, &[("a", &[0, 2])])),
                Some(vec![("a".to_string(), vec![0, 2])])
            );
        }
        assert_eq!(assignment_partitions(&Bytes::new()), Some(vec![]));
        assert_eq!(subscription_topics(&Bytes::new()), None);
        assert_eq!(
            subscription_topics(&Bytes::from_static(&[0, 0, 0x7f, 0xff, 1])),
            None
        );
        assert_eq!(
            subscription_topics(&Bytes::from_static(&[0xff, 0xff])),
            None
        );
        assert_eq!(
            assignment_partitions(&Bytes::from_static(&[0, 1, 0xff])),
            None
        );
    }
}
