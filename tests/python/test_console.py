"""The web console (/console) in headless Chromium, driven by selenium, against live nodes.

The nodes serve the console's files from this checkout (`--console-dir`), so these tests check the
files as they are here, not the ones built into the binary. Each test saves screenshots under its
tmp_path and prints where. Chromium and chromedriver are Debian's `chromium` and `chromium-driver`
(scripts/setup.sh installs them); nothing is fetched from the network.
"""

import hashlib
import json
import shutil
import urllib.request
import uuid
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import JavascriptException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import ACCESS_KEY, SECRET_KEY, Server, create_stream, list_all_shards, poll
from test_auth import ALICE, credentials_toml
from test_cluster import start_cluster

CONSOLE_DIR = Path(__file__).resolve().parents[2] / "crates" / "kinesin-gateway" / "console"
WAIT_SECS = 60


@pytest.fixture
def browser():
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail(
            "chromium and chromedriver are not installed: run scripts/setup.sh (it installs Debian's "
            "chromium and chromium-driver packages)",
            pytrace=False,
        )
    options = Options()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1300,1900", "--lang=en-US"):
        options.add_argument(arg)
    d = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield d
    finally:
        d.quit()


def screenshot(driver, tmp_path, name):
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def js(driver, script, *args):
    return driver.execute_script(script, *args)


def wait_until(driver, predicate, what, timeout=WAIT_SECS):
    """Waits until predicate(driver) is truthy; the page re-renders as it polls, so elements that
    went stale or a script that hit a half-drawn page only mean: not yet."""
    def check(d):
        try:
            return predicate(d)
        except (StaleElementReferenceException, JavascriptException):
            return False
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(check)
    except TimeoutException:
        error = js(driver, "const e = document.querySelector('#error'); return e && !e.hidden ? e.textContent : null")
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; the page's error box: {error!r}") from None


def texts(driver, selector):
    return js(driver, "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)", selector)


def shard_ids(driver, selector):
    return js(driver, "return [...document.querySelectorAll(arguments[0])].map(e => e.dataset.shardId)", selector)


def error_box(driver):
    return js(driver, "const e = document.querySelector('#error'); return e && !e.hidden ? e.textContent : ''")


def test_console_shows_streams_shard_map_splits_and_records(tmp_path, browser):
    # Four nodes, three replicas per shard: a drained node's replicas have somewhere to go.
    nodes = start_cluster(tmp_path, size=4, extra_args=["--console-dir", str(CONSOLE_DIR)])
    try:
        client = nodes[0].client()
        stream = create_stream(client, shards=2)
        payload = {"greeting": "hello from the console test", "id": uuid.uuid4().hex}
        data = json.dumps(payload).encode()
        put = client.put_record(StreamName=stream, Data=data, PartitionKey="console-key")

        # Any node serves the console: load it from the second.
        node = nodes[1]
        browser.get(f"{node.endpoint}/console/")
        wait_until(browser, lambda d: js(d, "return !!document.querySelector(arguments[0])", f'#streams tr[data-stream="{stream}"]'),
                   "the stream in the streams table")
        row = wait_until(browser, lambda d: (lambda t: "ACTIVE" in t and t)(
            texts(d, f'#streams tr[data-stream="{stream}"]')[0]), "the stream's row ACTIVE")
        assert "PROVISIONED" in row and "24 h" in row, row
        screenshot(browser, tmp_path, "streams")

        # The stream's page: the shard map has both shards, in the bar and in the lineage.
        browser.find_element(By.CSS_SELECTOR, f'#streams tr[data-stream="{stream}"] a.stream-link').click()
        wait_until(browser, lambda d: sorted(shard_ids(d, "#shard-bar rect.shard")) == ["shardId-000000000000", "shardId-000000000001"],
                   "the two shards in the hash-range bar")
        assert sorted(shard_ids(browser, "#lineage rect.shard")) == ["shardId-000000000000", "shardId-000000000001"]
        # Three replicas per shard over the four nodes' columns, and the leader of each shard this
        # node holds a replica of (it knows no other leader).
        def placed(d):
            rows = js(d, """return [...document.querySelectorAll('#placement tbody tr')].map(tr => ({
                id: tr.dataset.shardId,
                columns: tr.querySelectorAll('td.cell').length,
                replicas: [...tr.querySelectorAll('td.cell')].filter(td => td.textContent.trim()).length,
                here: !!tr.querySelector('td.cell[data-node="' + arguments[0] + '"]').textContent.trim(),
                leaders: tr.querySelectorAll('td.cell .leader').length}))""", node.node_id)
            return (len(rows) == 2 and all(r["columns"] == 4 and r["replicas"] == 3 and r["leaders"] == (1 if r["here"] else 0) for r in rows)
                    and rows)
        wait_until(browser, placed, "three replicas per shard, and leaders, in the placement table")

        # Split shard 0 from the console: at the middle of its range by default.
        middle = js(browser, """
            const sel = document.querySelector('#split-shard');
            sel.value = 'shardId-000000000000';
            sel.dispatchEvent(new Event('change'));
            return document.querySelector('#split-key').value""")
        assert middle == str(2**126), middle
        js(browser, "document.querySelector('#split-btn').click()")
        wait_until(browser, lambda d: any("Split shardId-000000000000: done" in t for t in texts(d, "#activity li")),
                   "the split's progress to end ACTIVE")
        shards = poll(lambda: (lambda s: len(s) == 4 and s)(list_all_shards(client, stream)), what="four shards after the split")
        children = {s["ShardId"]: s for s in shards if s.get("ParentShardId") == "shardId-000000000000"}
        assert sorted(children) == ["shardId-000000000002", "shardId-000000000003"], shards
        assert sorted(int(s["HashKeyRange"]["StartingHashKey"]) for s in children.values()) == [0, 2**126]
        wait_until(browser, lambda d: sorted(shard_ids(d, "#shard-bar rect.shard"))
                   == ["shardId-000000000001", "shardId-000000000002", "shardId-000000000003"],
                   "the split's children in the bar, and the parent gone from it")
        edges = js(browser, "return [...document.querySelectorAll('#lineage line.edge')].map(l => l.dataset.from + '>' + l.dataset.to)")
        assert sorted(edges) == ["shardId-000000000000>shardId-000000000002", "shardId-000000000000>shardId-000000000003"], edges
        assert shard_ids(browser, "#lineage g.tree-shard.closed") == ["shardId-000000000000"]

        # The record browser shows the record, as UTF-8, pretty JSON and hex.
        def read_records(shard, decode):
            js(browser, """
                const [shard, decode] = arguments;
                document.querySelector('#rb-shard').value = shard;
                document.querySelector('#rb-type').value = 'TRIM_HORIZON';
                document.querySelector('#rb-type').dispatchEvent(new Event('change'));
                const dec = document.querySelector('#rb-decode');
                dec.value = decode;
                document.querySelector('#rb-records').replaceChildren();
                document.querySelector('#rb-read').click()""", shard, decode)
            return wait_until(browser, lambda d: texts(d, "#rb-records .rec-data"), f"records of {shard} ({decode})")

        shown = read_records(put["ShardId"], "utf8")
        assert shown == [data.decode()], shown
        assert texts(browser, "#rb-records tr td.mono")[:2] == [put["SequenceNumber"], "console-key"]
        assert read_records(put["ShardId"], "json") == [json.dumps(payload, indent=2)]
        hex_view = read_records(put["ShardId"], "hex")[0]
        assert hex_view.startswith("00000000  " + " ".join(f"{b:02x}" for b in data[:16])), hex_view

        # Live charts: records written through this node show up as a rate.
        writer = node.client()
        for i in range(10):
            writer.put_record(StreamName=stream, Data=b"chart-%d" % i, PartitionKey=f"c{i}")
        wait_until(browser, lambda d: texts(d, '.chart[data-series="0"] svg text.axis') not in ([], ["1"]),
                   "a non-zero incoming-records rate in the chart")
        js(browser, "window.scrollTo(0, 0)")
        screenshot(browser, tmp_path, "stream")

        # The cluster: four nodes, up.
        browser.find_element(By.ID, "nav-cluster").click()
        def nodes_up(d):
            rows = texts(d, "#nodes tbody tr")
            return len(rows) == 4 and all("up" in r for r in rows) and rows
        wait_until(browser, nodes_up, "four nodes up in the cluster view")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#nodes button.drain-btn")) == 4

        # Drain node 4 from the console: its replicas move to the other nodes, with progress.
        drained = nodes[3].node_id
        browser.find_element(By.CSS_SELECTOR, f'#nodes button.drain-btn[data-node="{drained}"]').click()
        wait_until(browser, lambda d: "draining" in texts(d, f'#nodes tr[data-node="{drained}"]')[0], "node 4 draining")
        wait_until(browser, lambda d: "drained: no replicas left" in texts(d, f'#nodes tr[data-node="{drained}"]')[0],
                   "node 4's replicas all moved off", timeout=120)
        cluster = json.load(urllib.request.urlopen(f"{node.endpoint}/admin/v1/cluster", timeout=10))
        assert [(n["draining"], n["replicas"]) for n in cluster["nodes"] if n["id"] == drained] == [(True, 0)], cluster
        screenshot(browser, tmp_path, "cluster")
        assert not error_box(browser), error_box(browser)
    finally:
        for n in nodes:
            n.cleanup()


def test_console_signs_in_with_sigv4(tmp_path, browser):
    creds = tmp_path / "credentials.toml"
    creds.write_text(credentials_toml(ALICE))
    assert (ALICE["key"], ALICE["secret"]) == (ACCESS_KEY, SECRET_KEY)
    node = Server(tmp_path / "node", extra_args=["--credentials", str(creds), "--console-dir", str(CONSOLE_DIR)])
    try:
        node.start()
        stream = create_stream(node.client(), shards=1)

        browser.get(f"{node.endpoint}/console/")
        # Unsigned, the node refuses, and the page asks for keys.
        wait_until(browser, lambda d: "MissingAuthenticationTokenException" in error_box(d), "the unsigned request refused")
        wait_until(browser, lambda d: d.find_element(By.ID, "signin-form").is_displayed(), "the sign-in form")

        def sign_in(secret):
            for field, value in (("signin-akid", ACCESS_KEY), ("signin-secret", secret), ("signin-region", "us-east-1")):
                el = browser.find_element(By.ID, field)
                el.clear()
                el.send_keys(value)
            browser.find_element(By.ID, "signin-btn").click()

        sign_in("not-the-secret")
        wait_until(browser, lambda d: "InvalidSignatureException" in error_box(d), "a wrong secret refused")
        screenshot(browser, tmp_path, "wrong-secret")

        browser.find_element(By.ID, "signin-open").click()
        sign_in(SECRET_KEY)
        wait_until(browser, lambda d: js(d, "return !!document.querySelector(arguments[0])", f'#streams tr[data-stream="{stream}"]'),
                   "the stream listed once signed in")
        assert not error_box(browser), error_box(browser)
        # Keys stay in the tab's sessionStorage, nowhere else.
        assert js(browser, "return localStorage.length") == 0
        assert ACCESS_KEY in js(browser, "return sessionStorage.getItem('kinesin-console-credentials')")

        # Signed admin API (GET with a query string) too: the stream's replicas.
        browser.find_element(By.CSS_SELECTOR, f'#streams tr[data-stream="{stream}"] a.stream-link').click()
        wait_until(browser, lambda d: shard_ids(d, "#placement tbody tr") == ["shardId-000000000000"], "the placement table, signed")
        assert shard_ids(browser, "#shard-bar rect.shard") == ["shardId-000000000000"]
        assert not error_box(browser), error_box(browser)

        # Without crypto.subtle (plain HTTP other than localhost) the JavaScript SHA-256 signs.
        browser.get(f"{node.endpoint}/console/?jscrypto#/streams")
        assert js(browser, "return kinesinConsole.useSubtle") is False
        assert js(browser, "return kinesinConsole.sha256js('abc')") == hashlib.sha256(b"abc").hexdigest()
        wait_until(browser, lambda d: js(d, "return !!document.querySelector(arguments[0])", f'#streams tr[data-stream="{stream}"]'),
                   "the stream listed with the JavaScript signer")
        assert not error_box(browser), error_box(browser)
        screenshot(browser, tmp_path, "signed-in")
    finally:
        node.cleanup()
