"""The checker of the failure tests, fed synthetic acknowledgements and reads
(no broker): it must pass a clean history and catch each kind of anomaly."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from checker import Checker

T = "topic-a"


def msg(topic, partition, offset, value):
    return SimpleNamespace(topic=lambda: topic, partition=lambda: partition, offset=lambda: offset, value=lambda: value)


def history(n: int = 12, partitions: int = 3) -> tuple[Checker, list[tuple[str, int, int, bytes]]]:
    """A checker with ``n`` acknowledged values spread over ``partitions``,
    offsets consecutive per partition; returns it and the acked rows."""
    c = Checker(run="r1")
    nexts = [0] * partitions
    rows = []
    for i in range(n):
        p = i % partitions
        v = c.next_value()
        c.on_delivery(None, msg(T, p, nexts[p], v))
        rows.append((T, p, nexts[p], v))
        nexts[p] += 1
    return c, rows


def read_all(c: Checker, rows) -> None:
    for t, p, off, v in sorted(rows):
        c.read(t, p, off, v)


def test_values_are_unique_across_threads():
    c = Checker()
    out: list[bytes] = []
    lock = threading.Lock()

    def work():
        mine = [c.next_value() for _ in range(2000)]
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(out) == 8000 and len(set(out)) == 8000
    assert c.sent == 8000
    assert all(v.startswith(c.run.encode() + b"-") for v in out)


def test_clean_history_passes():
    c, rows = history()
    read_all(c, rows)
    r = c.assert_clean(min_acked=12)
    assert (r["acked"], r["read"], r["lost"], r["duplicated"], r["mismatched"], r["non_monotonic"]) == (12, 12, 0, 0, 0, 0)


def test_unacknowledged_values_that_were_written_are_allowed():
    c, rows = history()
    read_all(c, rows)
    extra = c.next_value()
    c.fail(extra, "timed out")
    c.read(T, 0, 4, extra)  # written although its delivery report said otherwise
    r = c.assert_clean()
    assert r["unacked_but_read"] == 1 and r["delivery_failures"] == 1


def test_lost_record_is_caught():
    c, rows = history()
    read_all(c, rows[:5] + rows[6:])
    r = c.report()
    assert r["lost"] == 1 and r["duplicated"] == 0 and r["non_monotonic"] == 0
    assert r["examples"]["lost"][0]["value"] == rows[5][3]
    with pytest.raises(AssertionError, match="1 lost"):
        c.assert_clean()


def test_duplicated_value_is_caught():
    c, rows = history()
    read_all(c, rows)
    t, p, _, v = rows[4]
    # The same value appended again at the end of its partition (a retry that
    # was not deduplicated).
    end = max(off for (tt, pp, off, _) in rows if pp == p) + 1
    c.read(t, p, end, v)
    r = c.report()
    assert r["duplicated"] == 1 and r["lost"] == 0
    assert r["examples"]["duplicated"][0]["value"] == v
    with pytest.raises(AssertionError, match="1 duplicated"):
        c.assert_clean()


def test_duplicate_in_another_partition_is_caught():
    c, rows = history(partitions=2)
    read_all(c, rows)
    c.read(T, 1, 100, rows[0][3])  # rows[0] was acked on partition 0
    assert c.report()["duplicated"] == 1


def test_offset_holding_another_value_is_caught():
    c, rows = history()
    t, p, off, v = rows[7]
    other = b"someone-else"
    read_all(c, [r for r in rows if r != rows[7]] + [(t, p, off, other)])
    r = c.report()
    assert r["mismatched"] == 1
    assert r["examples"]["mismatched"][0]["offset"] == off
    assert r["lost"] == 1  # the acked value is nowhere to be read either
    with pytest.raises(AssertionError, match="1 mismatched"):
        c.assert_clean()


def test_acked_value_read_at_another_offset_is_caught():
    c, rows = history(n=6, partitions=1)
    # Offsets 2 and 3 swapped: nothing lost or duplicated, but the acks lied.
    swapped = list(rows)
    swapped[2], swapped[3] = (T, 0, 2, rows[3][3]), (T, 0, 3, rows[2][3])
    read_all(c, swapped)
    r = c.report()
    assert r["lost"] == 0 and r["duplicated"] == 0
    assert r["mismatched"] == 2
    with pytest.raises(AssertionError, match="2 mismatched"):
        c.assert_clean()


def test_two_values_acknowledged_at_one_offset_are_caught():
    c, rows = history(n=4, partitions=1)
    v = c.next_value()
    c.ack(T, 0, 1, v)  # the broker acked two different records at offset 1
    read_all(c, rows + [(T, 0, 4, v)])
    r = c.report()
    assert r["mismatched"] >= 1
    assert any(m["offset"] == 1 for m in r["examples"]["mismatched"])


def test_two_values_read_at_one_offset_are_caught():
    c, rows = history(n=4, partitions=1)
    read_all(c, rows)
    c.read(T, 0, 2, b"r1-999")  # a later read of offset 2 returned something else
    r = c.report()
    assert r["mismatched"] == 1
    with pytest.raises(AssertionError, match="mismatched"):
        c.assert_clean()


def test_non_monotonic_offsets_are_caught():
    c, rows = history(n=6, partitions=1)
    order = [rows[0], rows[1], rows[3], rows[2], rows[4], rows[5]]
    for t, p, off, v in order:
        c.read(t, p, off, v)
    r = c.report()
    assert r["non_monotonic"] == 1 and r["lost"] == 0 and r["mismatched"] == 0
    assert r["examples"]["non_monotonic"][0] == {"topic": T, "partition": 0, "offset": 2, "after": 3}
    with pytest.raises(AssertionError, match="1 non_monotonic"):
        c.assert_clean()


def test_monotonic_is_per_partition():
    c, rows = history(n=9, partitions=3)
    # Interleaving partitions is fine as long as each one increases.
    for t, p, off, v in sorted(rows, key=lambda r: (r[2], -r[1])):
        c.read(t, p, off, v)
    c.assert_clean(min_acked=9)


def test_nothing_acknowledged_is_not_clean():
    c = Checker()
    with pytest.raises(AssertionError, match="only 0 records acknowledged"):
        c.assert_clean()


def test_min_acked_counts_acknowledgements():
    c, rows = history(n=3)
    read_all(c, rows)
    c.assert_clean(min_acked=3)
    with pytest.raises(AssertionError, match="only 3 records acknowledged"):
        c.assert_clean(min_acked=4)


def test_values_of_other_runs_are_ignored_for_duplicates():
    c, rows = history(n=3, partitions=1)
    read_all(c, rows)
    c.read(T, 0, 3, b"legacy")
    c.read(T, 0, 4, b"legacy")  # not ours: another writer may repeat values
    c.assert_clean()


def test_delivery_errors_are_reported_not_counted_as_acks():
    c, rows = history(n=3, partitions=1)
    read_all(c, rows)
    c.on_delivery("_MSG_TIMED_OUT", msg(T, 0, -1, c.next_value()))
    r = c.assert_clean(min_acked=3)
    assert r["acked"] == 3 and r["delivery_failures"] == 1


def test_report_lists_examples_in_the_failure_message():
    c, rows = history(n=30, partitions=1)
    read_all(c, rows[:10])
    with pytest.raises(AssertionError) as e:
        c.assert_clean()
    text = str(e.value)
    assert "20 lost" in text
    assert repr(rows[10][3]) in text  # first lost value is shown
    assert text.count("'value'") == 5  # a few examples, not all 20
