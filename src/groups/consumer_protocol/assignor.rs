//! Server-side assignors of KIP-848 groups (`group.remote.assignor`):
//! `uniform` (balanced and sticky, Kafka's default) and `range`
//! (contiguous ranges per topic, Kafka's `RangeAssignor`). Pure functions of
//! the members' subscriptions, the topics and the previous target.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::meta::consumer_groups::Assignment;

/// The assignor used when members name none.
pub const DEFAULT: &str = UNIFORM;
/// Kafka's `UniformAssignor`.
pub const UNIFORM: &str = "uniform";
/// Kafka's server-side `RangeAssignor`.
pub const RANGE: &str = "range";
/// Every assignor served, in preference order.
pub const ALL: [&str; 2] = [UNIFORM, RANGE];

/// A subscribed topic as the assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: i32,
}

/// What an assignor needs: each member's subscribed topic ids (resolved
/// from names and regexes, existing topics only), the topics, and the
/// previous target (for stickiness).
#[derive(Debug, Default)]
pub struct Input<'a> {
    pub members: BTreeMap<&'a str, BTreeSet<Uuid>>,
    pub topics: BTreeMap<Uuid, TopicInfo>,
    pub previous: BTreeMap<&'a str, &'a Assignment>,
}

/// Runs the named assignor; `None` if there is no such assignor.
pub fn assign(name: &str, input: &Input<'_>) -> Option<BTreeMap<String, Assignment>> {
    match name {
        UNIFORM => Some(uniform(input)),
        RANGE => Some(range(input)),
        _ => None,
    }
}

fn empty_result(input: &Input<'_>) -> BTreeMap<String, Assignment> {
    input
        .members
        .keys()
        .map(|m| (m.to_string(), Assignment::new()))
        .collect()
}

/// Every partition of the subscribed topics, ordered by topic name.
fn partitions(input: &Input<'_>) -> Vec<(Uuid, i32)> {
    let subscribed: BTreeSet<Uuid> = input.members.values().flatten().copied().collect();
    let mut topics: Vec<(&str, Uuid, i32)> = subscribed
        .iter()
        .filter_map(|id| {
            input
                .topics
                .get(id)
                .map(|t| (t.name.as_str(), *id, t.partitions))
        })
        .collect();
    topics.sort();
    topics
        .into_iter()
        .flat_map(|(_, id, n)| (0..n.max(0)).map(move |p| (id, p)))
        .collect()
}

/// Balanced (per partition, among the members able to take it, counts
/// differ by at most one where subscriptions allow) and sticky: a partition
/// stays with its previous owner unless balance needs it elsewhere.
pub fn uniform(input: &Input<'_>) -> BTreeMap<String, Assignment> {
    let mut out = empty_result(input);
    let all = partitions(input);
    let eligible = |t: &Uuid| -> Vec<&str> {
        input
            .members
            .iter()
            .filter(|(_, s)| s.contains(t))
            .map(|(m, _)| *m)
            .collect()
    };
    let mut eligible_of: BTreeMap<Uuid, Vec<&str>> = BTreeMap::new();
    for (t, _) in &all {
        eligible_of.entry(*t).or_insert_with(|| eligible(t));
    }
    let mut owner: BTreeMap<(Uuid, i32), &str> = BTreeMap::new();
    let mut count: BTreeMap<&str, usize> = input.members.keys().map(|m| (*m, 0)).collect();
    // Fair share when every member subscribes to everything: keep at most
    // the ceiling from the previous target, so a new member gets its share.
    let members = input.members.len().max(1);
    let cap = all.len().div_ceil(members);
    for (m, prev) in &input.previous {
        let Some(subs) = input.members.get(m) else {
            continue;
        };
        for (t, parts) in prev.iter() {
            if !subs.contains(t) {
                continue;
            }
            let n = input.topics.get(t).map_or(0, |x| x.partitions);
            for p in parts {
                if *p < n && !owner.contains_key(&(*t, *p)) && count[m] < cap {
                    owner.insert((*t, *p), m);
                    *count.get_mut(m).expect("member") += 1;
                }
            }
        }
    }
    for tp in &all {
        if owner.contains_key(tp) {
            continue;
        }
        if let Some(m) = eligible_of[&tp.0].iter().min_by_key(|m| (count[*m], **m)) {
            owner.insert(*tp, m);
            *count.get_mut(m).expect("member") += 1;
        }
    }
    // Even out what stickiness left unbalanced (heterogeneous
    // subscriptions): move a partition to a less loaded eligible member
    // while that lowers the spread. Each move lowers the sum of squared
    // counts, so this ends; the bound is a guard.
    let mut budget = all.len() * members + 1;
    let mut moved = true;
    while moved && budget > 0 {
        moved = false;
        for tp in &all {
            let Some(cur) = owner.get(tp).copied() else {
                continue;
            };
            let Some(best) = eligible_of[&tp.0]
                .iter()
                .copied()
                .min_by_key(|m| (count[*m], *m))
            else {
                continue;
            };
            if count[best] + 1 < count[cur] {
                owner.insert(*tp, best);
                *count.get_mut(cur).expect("member") -= 1;
                *count.get_mut(best).expect("member") += 1;
                moved = true;
                budget -= 1;
                if budget == 0 {
                    break;
                }
            }
        }
    }
    for ((t, p), m) in owner {
        out.get_mut(m)
            .expect("member")
            .entry(t)
            .or_default()
            .insert(p);
    }
    out
}

/// Per topic, its subscribers in member id order get contiguous ranges;
/// the first `partitions % members` get one more.
pub fn range(input: &Input<'_>) -> BTreeMap<String, Assignment> {
    let mut out = empty_result(input);
    let subscribed: BTreeSet<Uuid> = input.members.values().flatten().copied().collect();
    for t in subscribed {
        let Some(info) = input.topics.get(&t) else {
            continue;
        };
        let subs: Vec<&str> = input
            .members
            .iter()
            .filter(|(_, s)| s.contains(&t))
            .map(|(m, _)| *m)
            .collect();
        let n = info.partitions.max(0) as usize;
        let (each, extra) = (n / subs.len(), n % subs.len());
        let mut next = 0;
        for (i, m) in subs.iter().enumerate() {
            let k = each + usize::from(i < extra);
            if k > 0 {
                out.get_mut(*m)
                    .expect("member")
                    .entry(t)
                    .or_default()
                    .extend((next..next + k).map(|p| p as i32));
            }
            next += k;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(spec: &[(u128, i32)]) -> BTreeMap<Uuid, TopicInfo> {
        spec.iter()
            .map(|(id, n)| {
                (
                    Uuid::from_u128(*id),
                    TopicInfo {
                        name: format!("t{id}"),
                        partitions: *n,
                    },
                )
            })
            .collect()
    }

    fn t(id: u128) -> Uuid {
        Uuid::from_u128(id)
    }

    /// Every subscribed partition exactly once, only to subscribers.
    fn check_cover(input: &Input<'_>, out: &BTreeMap<String, Assignment>) {
        let mut seen = BTreeSet::new();
        for (m, a) in out {
            for (topic, parts) in a {
                assert!(input.members[m.as_str()].contains(topic), "{m} got {topic}");
                for p in parts {
                    assert!(seen.insert((*topic, *p)), "{topic}-{p} twice");
                }
            }
        }
        let expect: BTreeSet<(Uuid, i32)> = partitions(input).into_iter().collect();
        assert_eq!(seen, expect);
    }

    fn counts(out: &BTreeMap<String, Assignment>) -> Vec<usize> {
        out.values()
            .map(|a| a.values().map(BTreeSet::len).sum())
            .collect()
    }

    #[test]
    fn uniform_balances_covers_and_sticks() {
        let names: Vec<String> = (0..7).map(|i| format!("m{i}")).collect();
        for members in 1..=7 {
            let mut input = Input {
                topics: topics(&[(1, 10), (2, 3), (3, 7)]),
                ..Default::default()
            };
            for m in &names[..members] {
                input.members.insert(m.as_str(), [t(1), t(2), t(3)].into());
            }
            let first = uniform(&input);
            check_cover(&input, &first);
            let c = counts(&first);
            assert!(
                c.iter().max().unwrap() - c.iter().min().unwrap() <= 1,
                "{c:?}"
            );
            // Same input, previous target given: nothing moves.
            for (m, a) in &first {
                input.previous.insert(m.as_str(), a);
            }
            assert_eq!(uniform(&input), first);
        }
    }

    #[test]
    fn uniform_moves_only_what_a_new_member_needs() {
        let mut input = Input {
            topics: topics(&[(1, 12)]),
            ..Default::default()
        };
        for m in ["a", "b", "c"] {
            input.members.insert(m, [t(1)].into());
        }
        let before = uniform(&input);
        for (m, a) in &before {
            input.previous.insert(m.as_str(), a);
        }
        input.members.insert("d", [t(1)].into());
        let after = uniform(&input);
        check_cover(&input, &after);
        assert_eq!(counts(&after), vec![3, 3, 3, 3]);
        // Old members keep 3 of their 4 each: exactly 3 partitions move.
        for m in ["a", "b", "c"] {
            let kept = after[m][&t(1)].intersection(&before[m][&t(1)]).count();
            assert_eq!(kept, 3, "{m}");
        }
    }

    #[test]
    fn uniform_heterogeneous_subscriptions() {
        let mut input = Input {
            topics: topics(&[(1, 6), (2, 2)]),
            ..Default::default()
        };
        input.members.insert("a", [t(1)].into());
        input.members.insert("b", [t(1), t(2)].into());
        input.members.insert("c", [t(2)].into());
        let out = uniform(&input);
        check_cover(&input, &out);
        let c = counts(&out);
        assert!(
            c.iter().max().unwrap() - c.iter().min().unwrap() <= 2,
            "{c:?}"
        );
        // A member subscribed to nothing existing gets nothing.
        input.members.insert("z", [t(9)].into());
        let out = uniform(&input);
        check_cover(&input, &out);
        assert!(out["z"].is_empty());
    }

    #[test]
    fn range_gives_contiguous_ranges_per_topic() {
        let mut input = Input {
            topics: topics(&[(1, 7), (2, 2)]),
            ..Default::default()
        };
        for m in ["a", "b", "c"] {
            input.members.insert(m, [t(1), t(2)].into());
        }
        let out = range(&input);
        check_cover(&input, &out);
        assert_eq!(out["a"][&t(1)], [0, 1, 2].into());
        assert_eq!(out["b"][&t(1)], [3, 4].into());
        assert_eq!(out["c"][&t(1)], [5, 6].into());
        assert_eq!(out["a"][&t(2)], [0].into());
        assert_eq!(out["b"][&t(2)], [1].into());
        assert!(!out["c"].contains_key(&t(2)));
        assert!(assign("nope", &input).is_none());
        assert_eq!(assign(RANGE, &input), Some(out));
    }

    #[test]
    fn no_members_or_no_topics() {
        let input = Input::default();
        assert!(uniform(&input).is_empty());
        let mut input = Input::default();
        input.members.insert("a", [t(1)].into());
        assert_eq!(uniform(&input)["a"], Assignment::new());
        assert_eq!(range(&input)["a"], Assignment::new());
    }
}
