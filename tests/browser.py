"""A minimal headless-Chromium driver over the DevTools protocol (Debian's ``chromium``; nothing downloaded).

``open_page(url)`` loads a page and returns what a reader would notice: images that failed to load,
console errors and uncaught exceptions, plus a PNG screenshot; ``click_and_wait(selector)`` follows a link
or submits a form the way a click does and returns the same for the page it leads to.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

import tb_netguard

HANG_GUARD = 300
"""Seconds to wait for chromium before calling it hung: generous, so a loaded machine is slow, never failing."""
BROKEN_IMAGES_JS = ("Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
                    ".map(i => i.getAttribute('src'))")

OVERFLOW_JS = """(() => {
  const width = document.documentElement.clientWidth, found = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 1) continue;
    let parent = el.parentElement, scrolls = false;
    while (parent && parent !== document.body) {
      if (['auto', 'scroll'].includes(getComputedStyle(parent).overflowX)) { scrolls = true; break; }
      parent = parent.parentElement;
    }
    const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '');
    if (!scrolls) found.push(name + ' to ' + Math.round(box.right) + 'px');
  }
  for (const box of document.querySelectorAll('div.wide')) {  // a table's box: it fits, it does not scroll
    if (box.scrollWidth > box.clientWidth + 1) {
      const table = box.querySelector('table');
      found.push('table#' + (table ? table.id : '?') + ' scrolls: ' + box.scrollWidth + ' of '
                 + box.clientWidth + 'px');
    }
  }
  return found;
})()"""
SECTIONS_JS = """(() => {
  const heads = Array.from(document.querySelectorAll('h2[id]')), end = document.documentElement.scrollHeight;
  return heads.map((h, i) => {
    const top = h.getBoundingClientRect().top + window.scrollY;
    const next = i + 1 < heads.length ? heads[i + 1].getBoundingClientRect().top + window.scrollY : end;
    return {id: h.id, top: top, height: next - top, width: document.documentElement.clientWidth};
  });
})()"""


def check_report_layout(report, shots) -> tuple[list[str], list[str]]:
    """Open ``report`` at 1280 px, screenshot each section into ``shots``; returns (section ids, overflowing
    elements)."""
    with Browser(width=1280) as browser:
        browser.open_page(report.as_uri())
        return browser.screenshot_sections(shots), browser.overflowing()


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def require_chromium() -> None:
    """Skip the calling test without a chromium here; fail it in CI, which must have one."""
    import os

    import pytest

    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium (.ci/run installs it with apt-get)")
        pytest.skip("needs Debian's chromium (installed by .ci/run)")


@dataclass
class PageCheck:
    broken_images: list[str]
    console_errors: list[str] = field(default_factory=list)
    image_count: int = 0
    screenshot: bytes = b""


OFFLINE_FLAGS = ("--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-domain-reliability", "--no-default-browser-check", "--proxy-server=127.0.0.1:9",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1")
"""Chromium asks nothing of the network: no background services, no name lookups, its requests beyond the loopback
sent to a closed loopback port."""


class Browser:
    """One headless Chromium process, stopped by :meth:`close` (use as a context manager)."""

    def __init__(self, width: int = 1280, height: int = 1600):
        self.profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)  # chromium's helpers may still write
        self.process = subprocess.Popen(
            [chromium_path(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--allow-file-access-from-files", f"--user-data-dir={self.profile.name}",
             f"--window-size={width},{height}", "--remote-debugging-port=0", *OFFLINE_FLAGS, "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.ids = itertools.count(1)
        self.socket = None
        self.connections = contextlib.ExitStack()
        deadline = time.monotonic() + HANG_GUARD
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            if match:
                self._connect(match.group(1))
                return
        self.close()
        raise RuntimeError(f"chromium did not start its DevTools endpoint within {HANG_GUARD} s")

    def _connect(self, browser_url: str) -> None:
        from websockets.sync.client import connect

        port = re.search(r":(\d+)/", browser_url).group(1)
        import urllib.request

        pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=HANG_GUARD).read())
        page = next(p for p in pages if p["type"] == "page")
        self.socket = self.connections.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None,
                                                              open_timeout=HANG_GUARD))
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        ident = next(self.ids)
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=HANG_GUARD))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def _wait_for(self, event: str, timeout: float = HANG_GUARD) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == event for e in self.events):
                return
            self.events.append(json.loads(self.socket.recv(timeout=deadline - time.monotonic())))
        raise TimeoutError(event)

    def open_page(self, url: str) -> PageCheck:
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.events.clear()
        self.call("Page.navigate", url=url)
        self._wait_for("Page.loadEventFired")
        return self.inspect()

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the open page."""
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def click_and_wait(self, selector: str) -> PageCheck:
        """Click the element matching ``selector`` (a link or a submit button) and inspect the page it loads."""
        self.events.clear()
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
        self._wait_for("Page.loadEventFired")
        return self.inspect()

    def inspect(self) -> PageCheck:
        """What a reader would notice on the open page (events since the last navigation), with a screenshot."""
        broken = self.evaluate(BROKEN_IMAGES_JS)
        count = self.evaluate("document.images.length")
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                errors.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                errors.append(params["entry"].get("text", ""))
        metrics = self.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": metrics["width"], "height": min(metrics["height"], 8000),
                               "scale": 1})
        return PageCheck(broken, errors, count, base64.b64decode(shot["data"]))

    def overflowing(self) -> list[str]:
        """Elements of the open page that stick out past its right edge (outside a box that scrolls), and tables
        wider than their box (so a reader must scroll them): what, and by how much."""
        return self.evaluate(OVERFLOW_JS)

    def screenshot_sections(self, folder) -> list[str]:
        """A PNG of each section (from one ``h2[id]`` to the next) into ``folder``; returns the section ids."""
        from pathlib import Path

        sections = self.evaluate(SECTIONS_JS)
        for section in sections:
            shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                             clip={"x": 0, "y": section["top"], "width": section["width"],
                                   "height": max(1, min(section["height"], 8000)), "scale": 1})
            (Path(folder) / f"{section['id']}.png").write_bytes(base64.b64decode(shot["data"]))
        return [section["id"] for section in sections]

    def close(self) -> None:
        """Stop chromium; a socket of its beyond the loopback is recorded for the network guard first (chromium is
        not Python, so the guard's audit hook cannot see it)."""
        for pid, protocol, local, remote in tb_netguard.beyond_loopback(
                tb_netguard.inet_sockets({self.process.pid} | tb_netguard.descendants(self.process.pid))):
            tb_netguard.record(f"chromium {protocol} socket", f"{local} -> {remote} (pid {pid})")
        self.connections.close()
        self.process.kill()
        self.process.wait(timeout=30)
        self.profile.cleanup()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
