"""
The dashboard in a real headless browser (Debian's chromium, driven by
Selenium; tests/run.sh installs both), the usage history across a daemon
restart and under 256 concurrent streams, and `claudeproxy status` against
a running daemon.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import time
import urllib.request
from typing import Any, Callable

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from bench.fakecli import reply_text
from claudeproxy.ops import cli
from tests.harness import reactor, start, streamed_text
from tests.test_scale import FAKECLI, fakecli_env, request

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
#: where a screenshot of the dashboard goes, when set (docs/dashboard.md's)
SCREENSHOT = os.environ.get("CLAUDEPROXY_SCREENSHOT")


def browser() -> Any:
    """
    A headless chromium.  Fails (never skips) without it: run tests/run.sh.
    """
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise AssertionError("selenium is not installed: run the test command (bash tests/run.sh)")
    if not os.access(CHROMIUM, os.X_OK) or not os.access(CHROMEDRIVER, os.X_OK):
        raise AssertionError("chromium and chromedriver are needed: run the test command (bash tests/run.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1400"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def wait(predicate: Callable[[], Any], timeout: float = 20.0, driver: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            page = ""
            if driver is not None:
                page = "%s %s %s" % (driver.current_url, driver.get_log("browser"), driver.page_source[:1500])
            raise AssertionError("condition not met within %gs %s" % (timeout, page))
        time.sleep(0.1)


def text_of(driver: Any, ident: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, ident).text)


def severe(driver: Any) -> list[Any]:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def chat_blocking(url: str, prompt: str, key: str = "") -> int:
    body = json.dumps({"model": "sonnet", "messages": [{"role": "user", "content": prompt}]}).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    req = urllib.request.Request(url + "/v1/chat/completions", body, headers)
    with urllib.request.urlopen(req, timeout=60) as r:
        return int(r.status)


class DashboardBrowserTests(TestCase):
    timeout = 180

    async def test_dashboard_shows_requests_just_made(self) -> None:
        d = await start(self, state_dir=tempfile.mkdtemp(prefix="cp-state-"))
        # the weekly window past its warning threshold: the CLI reports its utilization
        d.fake.surpassed["7d"] = 0.75
        d.fake.utilization = (0.3, 0.8)
        for i in range(2):
            code, body = await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "hi %d" % i}]})
            self.assertEqual(code, 200, body)

        def in_browser() -> dict[str, Any]:
            from selenium.webdriver.common.by import By

            driver = browser()
            try:
                driver.get(d.url + "/")
                wait(lambda: text_of(driver, "live-served") == "2")
                rows = driver.find_elements(By.CSS_SELECTOR, "#recent tr")
                clients = text_of(driver, "clients")
                bars = driver.find_elements(By.CSS_SELECTOR, "#chart-requests rect")
                limits = {
                    e.get_attribute("data-window"): (
                        e.text,
                        e.find_element(By.CSS_SELECTOR, ".fill").value_of_css_property("width"),
                        e.find_element(By.CSS_SELECTOR, ".bar").value_of_css_property("width"),
                    )
                    for e in driver.find_elements(By.CSS_SELECTOR, "#limits .limit")
                }
                cost = text_of(driver, "cost")
                # a request made now shows after the page refreshes itself
                chat_blocking(d.url, "third")
                driver.execute_script("window.claudeproxyRefresh()")
                wait(lambda: text_of(driver, "live-served") == "3")
                after = len(driver.find_elements(By.CSS_SELECTOR, "#recent tr"))
                if SCREENSHOT:
                    driver.save_screenshot(SCREENSHOT)
                return {
                    "rows": len(rows),
                    "after": after,
                    "clients": clients,
                    "bars": len(bars),
                    "limits": limits,
                    "cost": cost,
                    "errors": severe(driver),
                    "title": driver.title,
                }
            finally:
                driver.quit()

        seen = await deferToThread(in_browser)
        self.assertEqual(seen["errors"], [])
        self.assertEqual(seen["title"], "claudeproxy")
        self.assertEqual(seen["rows"], 2)
        self.assertEqual(seen["after"], 3)
        self.assertIn("-", seen["clients"])
        self.assertGreaterEqual(seen["bars"], 1)
        # the weekly limit's bar, 80% full, its reset and its pace; the cost of the requests
        week, fill, width = seen["limits"]["seven_day"]
        self.assertIn("weekly: allowed_warning · 80% used · resets ", week)
        self.assertIn("at this rate the weekly limit is reached on ", week)
        self.assertAlmostEqual(float(fill[:-2]) / float(width[:-2]), 0.8, places=2)
        self.assertRegex(seen["cost"], r"^API-equivalent cost this day: \$0\.0\d{3}$")
        self.assertNotEqual(seen["cost"], "API-equivalent cost this day: $0.0000")

    async def test_login_cookie_and_cross_origin(self) -> None:
        d = await start(
            self, state_dir=tempfile.mkdtemp(prefix="cp-state-"), api_keys=(("agent", "k-agent"), ("editor", "k-e"))
        )
        code, body = await d.chat(
            {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}, {"Authorization": "Bearer k-agent"}
        )
        self.assertEqual(code, 200, body)
        # another web page, on another loopback port, tries to read the figures
        evil = Resource()
        page = (
            "<!doctype html><title>evil</title><script>"
            "fetch(%r, {credentials: 'include'}).then(r => r.text())"
            ".then(t => { document.title = 'read:' + t.slice(0, 40); })"
            ".catch(e => { document.title = 'blocked'; });</script>" % (d.url + "/v1/usage",)
        ).encode()

        class Page(Resource):
            isLeaf = True

            def render_GET(self, request: Any) -> bytes:
                request.setHeader(b"content-type", b"text/html")
                return page

        evil.putChild(b"", Page())
        evil_port = reactor.listenTCP(0, Site(Page()), interface="127.0.0.1")
        self.addCleanup(evil_port.stopListening)
        evil_url = "http://localhost:%d/" % (evil_port.getHost().port,)

        def in_browser() -> dict[str, Any]:
            from selenium.webdriver.common.by import By

            driver = browser()
            try:
                driver.get(d.url + "/")
                form = driver.find_elements(By.ID, "key")
                no_figures = not driver.find_elements(By.ID, "chart-requests")
                form[0].send_keys("wrong")
                driver.find_element(By.ID, "login").click()
                wait(lambda: driver.find_elements(By.ID, "login-error"), driver=driver)
                driver.find_element(By.ID, "key").send_keys("k-editor-wrong")
                driver.find_element(By.ID, "key").clear()
                driver.find_element(By.ID, "key").send_keys("k-e")
                driver.find_element(By.ID, "login").click()
                wait(lambda: driver.find_elements(By.ID, "chart-requests"))
                wait(lambda: "agent" in text_of(driver, "clients"))
                cookies = driver.get_cookies()
                js_cookie = driver.execute_script("return document.cookie")
                errors = severe(driver)
                driver.get(evil_url)
                title = wait(lambda: driver.title if driver.title != "evil" else None)
                return {
                    "form": len(form),
                    "no_figures": no_figures,
                    "cookies": cookies,
                    "js_cookie": js_cookie,
                    "errors": errors,
                    "evil": title,
                }
            finally:
                driver.quit()

        seen = await deferToThread(in_browser)
        self.assertEqual(seen["form"], 1)
        self.assertTrue(seen["no_figures"])
        [cookie] = seen["cookies"]
        self.assertTrue(cookie["httpOnly"])
        self.assertEqual(cookie["sameSite"], "Strict")
        self.assertEqual(seen["js_cookie"], "")
        self.assertEqual(seen["errors"], [])
        self.assertEqual(seen["evil"], "blocked")


class HistoryTests(TestCase):
    timeout = 120

    async def test_rows_survive_a_restart(self) -> None:
        state = tempfile.mkdtemp(prefix="cp-state-")
        first = await start(self, claude=FAKECLI, extra_env=fakecli_env(50, 10), state_dir=state)
        code, _, _ = await first.chat_stream(request("before restart"))
        self.assertEqual(code, 200)
        await first.daemon.core.stopService()
        second = await start(self, claude=FAKECLI, extra_env=fakecli_env(50, 10), state_dir=state)
        resp = await second.get("/v1/usage")
        figures = json.loads(await resp.text())
        [row] = figures["history"]["recent"]
        self.assertEqual((row["status"], row["model_served"], row["stream"]), (200, "claude-sonnet-5", True))
        self.assertEqual(figures["live"]["served"], 0)

    async def test_256_concurrent_streams_lose_no_row(self) -> None:
        n = 256
        d = await start(
            self,
            claude=FAKECLI,
            extra_env=fakecli_env(200, 100),
            max_concurrent=n,
            max_queued=0,
            state_dir=tempfile.mkdtemp(prefix="cp-state-"),
        )

        async def one(i: int) -> tuple[int, str]:
            code, items, _ = await d.chat_stream(request("req-%d" % (i,)))
            return code, streamed_text(items)

        results = await gatherResults([Deferred.fromCoroutine(one(i)) for i in range(n)])
        for i, (code, text) in enumerate(results):
            self.assertEqual((code, text), (200, reply_text(200, "req-%d" % (i,))))
        usage = d.proxy.usage
        self.assertEqual(await usage.count(), n)
        rows = await usage.rows(limit=10 * n)
        self.assertEqual(len({r.request_id for r in rows}), n)
        self.assertEqual({r.status for r in rows}, {200})

    async def test_status_command(self) -> None:
        d = await start(
            self,
            claude=FAKECLI,
            extra_env=fakecli_env(50, 10),
            state_dir=tempfile.mkdtemp(prefix="cp-state-"),
            api_keys=(("scripts", "k-s"),),
        )
        code, body = await d.chat(
            {"model": "sonnet", "messages": [{"role": "user", "content": "x"}]}, {"x-api-key": "k-s"}
        )
        self.assertEqual(code, 200, body)
        port = d.port.getHost().port

        def status(env: dict[str, str]) -> tuple[int, str]:
            out = io.StringIO()
            return cli.main(["status", "--port", str(port)], out=out, env=env), out.getvalue()

        code, text = await deferToThread(status, {})
        self.assertEqual(code, 1)
        self.assertIn("needs an API key", text)
        code, text = await deferToThread(status, {"CLAUDEPROXY_API_KEY": "k-s"})
        self.assertEqual(code, 0, text)
        self.assertIn("scripts", text)
        self.assertIn("0 in flight", text)
