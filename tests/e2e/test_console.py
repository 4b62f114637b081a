"""The built-in web console (/ui) in headless Chromium driven over WebDriver:
every page against one real broker with real topics, groups and traffic;
lag equal to what a Kafka client computes; create and delete through the
console visible to AdminClient; records with headers shown byte for byte;
live refresh; the read-only pages without JavaScript; security headers, CSRF
and bad input over plain HTTP. A screenshot of each page is written under the
test's tmp_path (and copied to $STRATA_CONSOLE_SCREENSHOTS when set) and
checked not to be blank.

Needs Debian's ``chromium`` and ``chromium-driver``: skipped without them,
a failure when STRATA_REQUIRE_CHROMIUM=1 (as .ci/run sets)."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path

import pytest
import requests
from confluent_kafka import TopicPartition

from cluster import wait_until
from conftest import Broker, _teardown
from kclients import Rec, admin, consumer, create_topic, produce, producer, unique_topic, watermarks

CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
PAGES = ["/ui", "/ui/topics", "/ui/groups", "/ui/brokers", "/ui/cost"]
WAIT_S = 20.0


# ----------------------------------------------------------------- fixtures


def _find(*names: str) -> str | None:
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    return None


@pytest.fixture(scope="module")
def browser_bins():
    chromium = os.environ.get("STRATA_CHROMIUM") or _find("chromium", "chromium-browser", "google-chrome")
    driver = os.environ.get("STRATA_CHROMEDRIVER") or _find("chromedriver")
    if chromium is None or driver is None:
        missing = ", ".join(n for n, p in (("chromium", chromium), ("chromedriver", driver)) if p is None)
        msg = f"{missing} not on PATH (install the Debian packages `chromium chromium-driver`)"
        if os.environ.get("STRATA_REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"{msg} and STRATA_REQUIRE_CHROMIUM=1", pytrace=False)
        pytest.skip(f"{msg}; STRATA_REQUIRE_CHROMIUM=1 makes this a failure")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("python package selenium missing: pip install -r tests/e2e/requirements.txt", pytrace=False)
    return chromium, driver


def _chrome(bins, javascript: bool = True):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = bins
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,800", "--hide-scrollbars"):
        opts.add_argument(a)
    if not javascript:
        opts.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    d = webdriver.Chrome(options=opts, service=Service(executable_path=driver))
    d.set_page_load_timeout(30)
    return d


@pytest.fixture(scope="module")
def driver(browser_bins):
    d = _chrome(browser_bins)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def console(request, tmp_path_factory):
    """One broker for the module, with topics, traffic and groups."""
    b = Broker(tmp_path_factory.mktemp("console") / "broker0")
    request.node._strata_brokers = [b]
    b.start()
    env = Traffic(b)
    yield env
    env.close()
    _teardown([b])


class Traffic:
    """Topics, records and groups the tests look at."""

    def __init__(self, b: Broker):
        self.broker = b
        self.url = b.http_url
        self.orders = unique_topic("orders")
        self.hdrs = unique_topic("hdrs")
        self.group = "billing-" + unique_topic("g")
        self.live_group = "live-" + unique_topic("g")
        create_topic(b.bootstrap, self.orders, partitions=3)
        create_topic(b.bootstrap, self.hdrs, partitions=1)
        p = producer(b.bootstrap)
        now = int(time.time() * 1000)
        produce(p, self.orders, [Rec(f"k{i}".encode(), json.dumps({"n": i, "tag": "<b>x</b>"}).encode(), None, now, i % 3) for i in range(300)])
        # Bytes that are not UTF-8, markup and a null header value.
        self.key = b"key-\x00\xff<k>"
        self.value = b'{"id": 7, "name": "caf\xc3\xa9 <script>alert(1)</script>"}'
        self.headers = [("trace-id", b"\x00\x01\x02\xfe\xff"), ("content-type", b"application/json"), ("empty", None)]
        self.ts = now
        produce(p, self.hdrs, [Rec(self.key, self.value, self.headers, now)])
        # A group with committed offsets behind the end: lag 100 - 10*(p+1).
        c = consumer(b.bootstrap, **{"group.id": self.group})
        try:
            c.commit(offsets=[TopicPartition(self.orders, p, 10 * (p + 1)) for p in range(3)], asynchronous=False)
        finally:
            c.close()
        # A group with a live member (assignment on its page).
        self.live = consumer(b.bootstrap, **{"group.id": self.live_group, "auto.offset.reset": "earliest", "session.timeout.ms": 30000})
        self.live.subscribe([self.orders])
        wait_until(lambda: self._polled_assignment(), WAIT_S, "live consumer assigned")

    def _polled_assignment(self):
        self.live.poll(0.2)
        return self.live.assignment()

    def close(self):
        try:
            self.live.close()
        except Exception:  # noqa: BLE001 - teardown
            pass


# ------------------------------------------------------------------ helpers


def png_colours(path: Path) -> int:
    """Distinct RGB(A) colours of an 8-bit PNG (sampled every 3rd pixel)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, chunk = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    w, h, depth, ctype = ihdr[0], ihdr[1], ihdr[2], ihdr[3]
    assert depth == 8 and ctype in (2, 6), f"unexpected PNG format {ihdr}"
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    colours = set()
    i = 0
    for _ in range(h):
        f = raw[i]
        line = bytearray(raw[i + 1 : i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
        for x in range(0, w, 3):
            colours.add(bytes(line[x * bpp : x * bpp + 3]))
    return len(colours)


def screenshot(d, tmp_path: Path, name: str) -> Path:
    out = tmp_path / f"{name}.png"
    assert d.save_screenshot(str(out)), f"screenshot {name} failed"
    n = png_colours(out)
    assert n > 16, f"screenshot {name} looks blank ({n} colours)"
    target = os.environ.get("STRATA_CONSOLE_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(target) / out.name)
    return out


def open_page(d, url: str, h1: str | None = None):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    d.get(url)
    el = WebDriverWait(d, WAIT_S).until(EC.presence_of_element_located((By.TAG_NAME, "h1")))
    if h1 is not None:
        assert h1 in el.text, f"{url}: heading {el.text!r}, want {h1!r}"
    return el


def follow(d, el, h1: str | None = None):
    """Click a link or submit button and wait for the next page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from selenium.common.exceptions import WebDriverException

    old = d.find_element(By.TAG_NAME, "html")
    el.click()

    def left(_):
        try:
            old.tag_name  # noqa: B018 - raises once the old page is gone
            return False
        except WebDriverException:
            return True

    WebDriverWait(d, WAIT_S).until(left)
    h = WebDriverWait(d, WAIT_S).until(EC.presence_of_element_located((By.TAG_NAME, "h1")))
    if h1 is not None:
        assert h1 in h.text, f"{d.current_url}: heading {h.text!r}, want {h1!r}"
    return h


def lag_by_partition(d) -> dict[int, int]:
    from selenium.webdriver.common.by import By

    out = {}
    for tr in d.find_elements(By.CSS_SELECTOR, "#lag tbody tr[data-partition]"):
        out[int(tr.get_attribute("data-partition"))] = int(tr.find_element(By.CSS_SELECTOR, "td[data-lag]").text)
    return out


def kafka_lag(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    c = consumer(bootstrap, **{"group.id": group})
    try:
        committed = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        c.close()
    hw = watermarks(bootstrap, topic, range(partitions))
    return {tp.partition: hw[tp.partition][1] - tp.offset for tp in committed}


def metrics_value(url: str, name: str, labels: dict) -> float:
    text = requests.get(url + "/metrics", timeout=10).text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{want}}} not in /metrics")


# -------------------------------------------------------------------- tests


def test_group_lag_equals_kafka_and_cli(console, driver):
    open_page(driver, f"{console.url}/ui/group?id={console.group}", console.group)
    shown = lag_by_partition(driver)
    want = kafka_lag(console.broker.bootstrap, console.group, console.orders, 3)
    assert shown == want == {0: 90, 1: 80, 2: 70}, (shown, want)
    for p, lag in shown.items():
        assert metrics_value(console.url, "kafka_consumergroup_lag", {"consumergroup": console.group, "topic": console.orders, "partition": p}) == lag
    from conftest import strata_bin

    out = subprocess.run([str(strata_bin()), "group", "describe", console.group, "-b", console.broker.bootstrap], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    cli = {}
    for line in out.stdout.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[0] == console.group and cols[1] == console.orders:
            cli[int(cols[2])] = int(cols[5])
    assert cli == shown, (cli, shown)


def test_live_refresh_follows_traffic(console, driver):
    """Charts and lag refresh without a reload; lag follows new records."""
    from selenium.webdriver.common.by import By

    open_page(driver, f"{console.url}/ui/group?id={console.group}", console.group)
    driver.execute_script("window.__noReload = 1")
    p = producer(console.broker.bootstrap)
    produce(p, console.orders, [Rec(b"k", b"v", None, None, 0) for _ in range(25)])
    want = kafka_lag(console.broker.bootstrap, console.group, console.orders, 3)
    wait_until(lambda: lag_by_partition(driver) == want, WAIT_S, f"lag on the page becomes {want}")
    assert driver.execute_script("return window.__noReload") == 1, "the page reloaded"
    # The overview's records chart follows a burst bigger than anything
    # before it, without a reload.
    open_page(driver, console.url + "/ui", "Overview")
    driver.execute_script("window.__noReload = 1")

    def chart_max():
        t = driver.find_element(By.CSS_SELECTOR, "#chart-records .chart-axis span").text
        return float(t.removeprefix("max ").removesuffix("/s"))

    before = chart_max()
    produce(p, console.orders, [Rec(b"k", b"v" * 100) for _ in range(5000)])
    wait_until(lambda: chart_max() > before, WAIT_S, f"records chart rises above {before}/s")
    assert driver.execute_script("return window.__noReload") == 1, "the page reloaded"
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-refreshed")
    assert driver.find_element(By.ID, "live-status").text.startswith("updated ")
    assert driver.find_elements(By.CSS_SELECTOR, "#chart-produce polyline")


def test_create_and_delete_topic_through_console(console, driver):
    from selenium.webdriver.common.by import By

    name = unique_topic("made-in-ui")
    a = admin(console.broker.bootstrap)
    open_page(driver, console.url + "/ui/topics", "Topics")
    driver.find_element(By.ID, "topic-name").send_keys(name)
    driver.find_element(By.ID, "topic-partitions").send_keys("4")
    driver.find_element(By.ID, "topic-configs").send_keys("retention.ms=3600000\ncleanup.policy=compact")
    follow(driver, driver.find_element(By.CSS_SELECTOR, "form[action='/ui/topics'] button[type=submit]"), name)
    assert "Topic created" in driver.page_source
    md = wait_until(lambda: a.list_topics(timeout=10).topics.get(name), WAIT_S, "AdminClient lists the new topic")
    assert len(md.partitions) == 4
    cfg = driver.find_element(By.ID, "configs").text
    assert "3600000" in cfg and "compact" in cfg
    # The same validation as the Kafka API: 0 partitions is INVALID_PARTITIONS.
    open_page(driver, console.url + "/ui/topics", "Topics")
    bad = unique_topic("bad")
    driver.find_element(By.ID, "topic-name").send_keys(bad)
    driver.find_element(By.ID, "topic-partitions").send_keys("0")
    follow(driver, driver.find_element(By.CSS_SELECTOR, "form[action='/ui/topics'] button[type=submit]"), "Topics")
    err = driver.find_element(By.ID, "form-error").text
    assert "400" in err and "INVALID_PARTITIONS" in err, err
    assert driver.find_element(By.ID, "topic-name").get_attribute("value") == bad, "the form keeps its values"
    assert bad not in a.list_topics(timeout=10).topics
    # Alter a config through the form.
    open_page(driver, f"{console.url}/ui/topics/{name}", name)
    driver.find_element(By.ID, "cfg-name").send_keys("retention.ms")
    driver.find_element(By.ID, "cfg-value").send_keys("7200000")
    follow(driver, driver.find_element(By.CSS_SELECTOR, "form[action$='/configs'] button[type=submit]"), name)
    assert "7200000" in driver.find_element(By.ID, "configs").text
    # Delete: a confirm step with the typed name.
    follow(driver, driver.find_element(By.LINK_TEXT, "Delete topic…"), "Delete topic")
    driver.find_element(By.ID, "confirm").send_keys(name + "-typo")
    follow(driver, driver.find_element(By.CSS_SELECTOR, "button.danger"), "Bad Request")
    assert "does not match" in driver.find_element(By.TAG_NAME, "main").text
    assert name in a.list_topics(timeout=10).topics, "deleted without a matching confirmation"
    open_page(driver, f"{console.url}/ui/topics/{name}/delete", "Delete topic")
    driver.find_element(By.ID, "confirm").send_keys(name)
    follow(driver, driver.find_element(By.CSS_SELECTOR, "button.danger"), "Topics")
    wait_until(lambda: name not in a.list_topics(timeout=10).topics, WAIT_S, "AdminClient no longer lists the topic")
    assert name not in driver.find_element(By.ID, "topics").text


def test_record_browser_shows_headers_byte_for_byte(console, driver):
    from selenium.webdriver.common.by import By

    open_page(driver, f"{console.url}/ui/topics/{console.hdrs}/records?mode=offset&offset=0&partition=0&format=hex", "Records")
    rows = driver.find_elements(By.CSS_SELECTOR, "#records tbody tr[data-offset]")
    assert len(rows) == 1
    r = rows[0]
    assert r.find_element(By.CSS_SELECTOR, "pre.key").text == console.key.hex(" ")
    assert r.find_element(By.CSS_SELECTOR, "pre.value").text == console.value.hex(" ")
    got = [(li.find_element(By.CLASS_NAME, "hkey").text, li.find_element(By.CLASS_NAME, "hval").text) for li in r.find_elements(By.CSS_SELECTOR, ".headers li")]
    want = [(k, "null" if v is None else v.hex(" ")) for k, v in console.headers]
    assert got == want
    # Text: escapes non-UTF-8 bytes; markup in the value is text, not HTML.
    open_page(driver, f"{console.url}/ui/topics/{console.hdrs}/records?format=text", "Records")
    r = driver.find_element(By.CSS_SELECTOR, "#records tbody tr[data-offset]")
    assert r.find_element(By.CSS_SELECTOR, "pre.key").text == "key-\\x00\\xff<k>"
    assert r.find_element(By.CSS_SELECTOR, "pre.value").text == console.value.decode()
    assert not driver.find_elements(By.CSS_SELECTOR, "#records script, #records k")
    # From a timestamp: the record's own time finds it, a later one nothing.
    ts = console.ts
    assert driver.execute_script("return Date.parse(arguments[0].getAttribute('datetime'))", r.find_element(By.TAG_NAME, "time")) == ts
    open_page(driver, f"{console.url}/ui/topics/{console.hdrs}/records?mode=timestamp&timestamp={ts}", "Records")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#records tbody tr[data-offset]")) == 1
    open_page(driver, f"{console.url}/ui/topics/{console.hdrs}/records?mode=timestamp&timestamp={ts + 1}", "Records")
    assert not driver.find_elements(By.CSS_SELECTOR, "#records tbody tr[data-offset]")


def test_read_only_pages_without_javascript(console, browser_bins, tmp_path):
    from selenium.webdriver.common.by import By

    d = _chrome(browser_bins, javascript=False)
    try:
        open_page(d, console.url + "/ui", "Overview")
        assert d.execute_script is not None
        assert d.find_element(By.CSS_SELECTOR, "#chart-produce svg")
        open_page(d, console.url + "/ui/topics", "Topics")
        follow(d, d.find_element(By.LINK_TEXT, console.orders), console.orders)
        assert len(d.find_elements(By.CSS_SELECTOR, "#partitions tbody tr")) == 3
        # The record browser is a plain GET form.
        d.find_element(By.CSS_SELECTOR, "#rb-n").clear()
        d.find_element(By.CSS_SELECTOR, "#rb-n").send_keys("5")
        follow(d, d.find_element(By.CSS_SELECTOR, "form.browse button[type=submit]"), "Records")
        assert len(d.find_elements(By.CSS_SELECTOR, "#records tbody tr[data-offset]")) == 5
        open_page(d, f"{console.url}/ui/group?id={console.group}", console.group)
        assert lag_by_partition(d) == kafka_lag(console.broker.bootstrap, console.group, console.orders, 3)
        for path, h1 in (("/ui/groups", "Consumer groups"), ("/ui/brokers", "Brokers"), ("/ui/cost", "Cost")):
            open_page(d, console.url + path, h1)
        assert d.find_element(By.TAG_NAME, "body").get_attribute("data-refreshed") is None
        screenshot(d, tmp_path, "cost-nojs")
    finally:
        d.quit()


def test_keyboard_skip_link(console, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(driver, console.url + "/ui/topics", "Topics")
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    first = driver.switch_to.active_element
    assert first.get_attribute("class") == "skip" and first.text == "Skip to content"
    first.send_keys(Keys.ENTER)
    wait_until(lambda: driver.switch_to.active_element.get_attribute("id") == "main", WAIT_S, "focus moves to main")
    for inp in driver.find_elements(By.CSS_SELECTOR, "main input:not([type=hidden]):not([type=radio]), main textarea, main select"):
        assert driver.find_elements(By.CSS_SELECTOR, f"label[for='{inp.get_attribute('id')}']"), f"input {inp.get_attribute('name')} has no label"


def test_headers_csrf_and_bad_input(console):
    """Over plain HTTP: strict CSP on every response, no inline script or
    style, CSRF refusals, clear 4xx pages for bad input."""
    url = console.url
    for path in [*PAGES, f"/ui/topics/{console.orders}", f"/ui/topics/{console.orders}/records", f"/ui/group?id={console.group}", "/ui/nope"]:
        r = requests.get(url + path, timeout=10)
        assert r.headers["Content-Security-Policy"] == CSP, path
        assert r.headers["X-Content-Type-Options"] == "nosniff", path
        assert r.headers["Content-Type"].startswith("text/html"), path
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.text), f"inline script in {path}"
        assert not re.search(r"\sstyle=|<style", r.text), f"inline style in {path}"
        assert "<script src=\"/ui/assets/console.js\" defer></script>" in r.text
    css = requests.get(url + "/ui/assets/console.css", timeout=10)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    js = requests.get(url + "/ui/assets/console.js", timeout=10)
    assert js.status_code == 200 and js.headers["Content-Type"].startswith("text/javascript")
    assert "http" not in re.sub(r"//.*", "", js.text), "the script loads nothing from elsewhere"
    # Bad input: 4xx pages, escaped.
    cases = [
        ("/ui/topics/%3Cscript%3Ealert(1)%3C%2Fscript%3E", 404),
        (f"/ui/topics/{console.orders}/records?n=100000", 400),
        (f"/ui/topics/{console.orders}/records?mode=offset&offset=-1", 400),
        (f"/ui/topics/{console.orders}/records?mode=offset&offset=999999&partition=0", 400),
        (f"/ui/topics/{console.orders}/records?partition=7", 400),
        (f"/ui/topics/{console.orders}/records?format=%3Cb%3E", 400),
        ("/ui/group?id=%3Cimg%20src%3Dx%3E", 404),
        ("/ui/group", 400),
        ("/ui/does/not/exist", 404),
    ]
    for path, status in cases:
        r = requests.get(url + path, timeout=10)
        assert r.status_code == status, f"{path}: {r.status_code} {r.text[:300]}"
        assert "<script>" not in r.text and "<img src=x>" not in r.text and "<b>" not in r.text, path
        assert r.headers["Content-Security-Policy"] == CSP
    # CSRF: no token, a wrong token, a foreign origin.
    page = requests.get(url + "/ui/topics", timeout=10).text
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    name = unique_topic("csrf")
    for data, hdrs in (
        ({"name": name}, {}),
        ({"name": name, "csrf": "0" * len(token)}, {}),
        ({"name": name, "csrf": token}, {"Origin": "http://evil.example"}),
        ({"name": name, "csrf": token}, {"Referer": "http://evil.example/ui/topics"}),
    ):
        r = requests.post(url + "/ui/topics", data=data, headers=hdrs, timeout=10, allow_redirects=False)
        assert r.status_code == 403, (data, hdrs, r.status_code)
    r = requests.post(f"{url}/ui/topics/{console.orders}/delete", data={"confirm": console.orders}, timeout=10, allow_redirects=False)
    assert r.status_code == 403
    assert name not in admin(console.broker.bootstrap).list_topics(timeout=10).topics
    assert console.orders in admin(console.broker.bootstrap).list_topics(timeout=10).topics
    # With the token and the same origin it works (and creates nothing twice).
    r = requests.post(url + "/ui/topics", data={"name": name, "csrf": token, "partitions": "1"}, headers={"Origin": url}, timeout=10, allow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    r = requests.post(url + "/ui/topics", data={"name": name, "csrf": token, "partitions": "1"}, headers={"Origin": url}, timeout=10, allow_redirects=False)
    assert r.status_code == 409 and "TOPIC_ALREADY_EXISTS" in r.text


def test_cost_numbers_equal_metrics(console):
    page = requests.get(console.url + "/ui/cost", timeout=10).text
    m = re.search(rf'<tr data-topic="{re.escape(console.orders)}">.*?data-bytes-in="([0-9.e+]+)"', page)
    assert m, "topic row missing"
    assert float(m.group(1)) == metrics_value(console.url, "strata_topic_bytes_in_total", {"topic": console.orders})
    assert "strata_object_store_requests_total" in page and "cost metering" in page


# Last, so the charts hold the traffic of the tests above.
def test_every_page_renders_with_screenshots(console, driver, tmp_path):
    """Each page shows real data at 1280x800 and at phone width."""
    from selenium.webdriver.common.by import By

    t0 = time.monotonic()
    driver.set_window_size(1280, 800)
    open_page(driver, console.url + "/ui", "Overview")
    assert driver.find_element(By.CSS_SELECTOR, "#nodes tbody").text.strip(), "no nodes listed"
    assert "controller" in driver.find_element(By.ID, "nodes").text
    screenshot(driver, tmp_path, "overview")
    open_page(driver, console.url + "/ui/topics", "Topics")
    assert console.orders in driver.find_element(By.ID, "topics").text
    screenshot(driver, tmp_path, "topics")
    open_page(driver, f"{console.url}/ui/topics/{console.orders}", console.orders)
    rows = driver.find_elements(By.CSS_SELECTOR, "#partitions tbody tr")
    assert len(rows) == 3
    ends = [int(r.find_elements(By.TAG_NAME, "td")[3].text) for r in rows]
    hw = watermarks(console.broker.bootstrap, console.orders, range(3))
    assert ends == [hw[p][1] for p in range(3)], (ends, hw)
    screenshot(driver, tmp_path, "topic")
    open_page(driver, f"{console.url}/ui/topics/{console.orders}/records?n=50&format=json", "Records")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#records tbody tr[data-offset]")) == 50
    screenshot(driver, tmp_path, "records")
    open_page(driver, console.url + "/ui/groups", "Consumer groups")
    assert console.group in driver.find_element(By.ID, "groups").text
    screenshot(driver, tmp_path, "groups")
    open_page(driver, f"{console.url}/ui/group?id={console.live_group}", console.live_group)
    members = driver.find_element(By.ID, "members").text
    assert console.orders in members, members
    assert "STABLE" in driver.find_element(By.ID, "group-state").text
    open_page(driver, f"{console.url}/ui/group?id={console.group}", console.group)
    assert driver.find_elements(By.CSS_SELECTOR, "#chart-lag-0 polyline")
    screenshot(driver, tmp_path, "group")
    open_page(driver, console.url + "/ui/brokers", "Brokers")
    assert driver.find_element(By.CSS_SELECTOR, "#brokers tbody tr").text
    screenshot(driver, tmp_path, "brokers")
    open_page(driver, console.url + "/ui/cost", "Cost")
    assert "cost metering" in driver.find_element(By.TAG_NAME, "main").text
    screenshot(driver, tmp_path, "cost")
    # Phone width: the page does not scroll sideways (tables scroll inside).
    driver.set_window_size(390, 844)
    for path, name in (("/ui", "overview-phone"), (f"/ui/group?id={console.group}", "group-phone")):
        open_page(driver, console.url + path)
        over = driver.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert over <= 1, f"{path} overflows the phone width by {over}px"
        screenshot(driver, tmp_path, name)
    driver.set_window_size(1280, 800)
    assert time.monotonic() - t0 < 60
