"""The report in a real headless Chromium: it loads with no console error, no network request, charts drawn.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
JSON messages separated by NUL on file descriptors 3 and 4), so no browser
driver package is needed. The screenshot is kept in test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import report_fixtures as rf
from clinic_outcomes.report.render import render_report

CHROMIUM = Path("/usr/bin/chromium")
# Debian's /usr/bin/chromium is a shell wrapper that does not pass descriptors 3 and 4 on; run the binary it runs.
CHROMIUM_BINARY = Path("/usr/lib/chromium/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    # CI sets CLINIC_OUTCOMES_REQUIRE_BROWSER=1 after installing chromium: there a missing browser fails, never skips.
    pytest.mark.skipif(
        not CHROMIUM.exists() and os.environ.get("CLINIC_OUTCOMES_REQUIRE_BROWSER") != "1",
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]


class Chromium:
    """A headless Chromium and one page, spoken to over the DevTools pipe."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="report-chromium-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        args = [
            str(CHROMIUM), "--headless=new", "--remote-debugging-pipe", "--no-first-run", "--no-default-browser-check",
            "--disable-gpu", "--disable-extensions", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-default-apps", "--mute-audio", f"--user-data-dir={self.profile}",
            "--window-size=1280,1600", "about:blank",
        ]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run sandboxed as root (CI containers)

        def pipes_on_3_and_4() -> None:
            # The protocol reads fd 3 and writes fd 4. Move both ends above 9 first, so that
            # putting one on 3 or 4 cannot overwrite the other whatever numbers they had here.
            reading = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
            writing = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
            os.dup2(reading, 3)
            os.dup2(writing, 4)

        # Our descriptors are not inheritable (PEP 446), so only 3 and 4 reach the browser.
        self.process = subprocess.Popen(
            [str(CHROMIUM_BINARY), *args[1:]], close_fds=False, preexec_fn=pipes_on_3_and_4,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def call(self, method: str, session: str | None = None, timeout: float = 30, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def page(self, method: str, **params) -> dict:
        return self.call(method, session=self.session, **params)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._receive(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._from_browser], [], [], remaining)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def loaded_report(tmp_path_factory):
    con = rf.build_warehouse()
    paths = render_report(
        con, settings=rf.settings(min_cell_patients=1), as_of=rf.AS_OF, out_dir=tmp_path_factory.mktemp("report")
    )
    browser = Chromium()
    try:
        for domain in ("Runtime.enable", "Log.enable", "Network.enable", "Page.enable"):
            browser.page(domain)
        url = paths.html.resolve().as_uri()
        browser.page("Page.navigate", url=url)
        browser.wait_for("Page.loadEventFired")
        charts = browser.page(
            "Runtime.evaluate",
            returnByValue=True,
            expression="""
                Array.from(document.querySelectorAll('svg.chart')).map(svg => {
                    const box = svg.getBoundingClientRect();
                    const drawn = Array.from(svg.querySelectorAll('path.series')).filter(p => p.getTotalLength() > 10);
                    return {width: box.width, height: box.height, drawn: drawn.length};
                })
            """,
        )["result"]["value"]
        ARTIFACTS.mkdir(exist_ok=True)
        shot = browser.page("Page.captureScreenshot", format="png", clip={"x": 0, "y": 0, "width": 1280, "height": 1600, "scale": 1})
        screenshot = ARTIFACTS / "report.png"
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        yield {"url": url, "events": list(browser.events), "charts": charts, "screenshot": screenshot,
               "charts_in_html": paths.html.read_text(encoding="utf-8").count('<svg class="chart"')}
    finally:
        browser.close()


def test_report_loads_without_console_errors(loaded_report):
    errors = [
        event for event in loaded_report["events"]
        if event.get("method") == "Runtime.exceptionThrown"
        or (event.get("method") == "Runtime.consoleAPICalled" and event["params"]["type"] in ("error", "assert"))
        or (event.get("method") == "Log.entryAdded" and event["params"]["entry"]["level"] == "error")
    ]
    assert errors == []


def test_report_makes_no_network_request(loaded_report):
    requested = [
        event["params"]["request"]["url"]
        for event in loaded_report["events"]
        if event.get("method") == "Network.requestWillBeSent"
    ]
    assert requested == [loaded_report["url"]]  # the report itself, nothing else


def test_charts_render(loaded_report):
    charts = loaded_report["charts"]
    # the network report (clinics have their own): 2 relief charts and the trend charts with a figure to show
    # (rendered with a minimum cell of 1, so that no figure of this two-clinic fixture is suppressed:
    # with 2, clinic_b's one patient hides most of the network's groups too)
    assert len(charts) == loaded_report["charts_in_html"] >= 3
    assert all(chart["width"] > 300 and chart["height"] > 150 for chart in charts)
    assert sum(chart["drawn"] for chart in charts) >= 3  # curves with a visible length


def test_screenshot_is_kept(loaded_report):
    png = loaded_report["screenshot"].read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
