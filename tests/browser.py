"""Headless Chromium driven over the Chrome DevTools Protocol, for the dashboard's tests.

Debian's ``chromium`` (``make test`` installs it) runs with ``--remote-debugging-port=0``; the
port it picked is read from ``DevToolsActivePort`` in its profile folder, and one page target
is driven over a websocket (the ``websockets`` package): navigate, evaluate JavaScript, wait
for a condition, take screenshots. Uncaught exceptions in the page are collected, so a test
can fail on them.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

__all__ = ["Browser", "BrowserError", "chromium_path"]


class BrowserError(AssertionError):
    pass


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    def __init__(self, executable: str, width: int = 1400, height: int = 900) -> None:
        self._profile = tempfile.mkdtemp(prefix="layerserve-chromium-")
        self.proc = subprocess.Popen(
            [executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
             "--remote-debugging-port=0", f"--user-data-dir={self._profile}", f"--window-size={width},{height}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._next_id = 0
        self.exceptions: list[str] = []
        self.ws = self._attach(time.monotonic() + 30)
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def _attach(self, deadline: float) -> ClientConnection:
        port_file = Path(self._profile) / "DevToolsActivePort"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited with {self.proc.returncode}")
            if port_file.exists() and port_file.read_text().strip():
                port = int(port_file.read_text().split()[0])
                pages = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
                         if t["type"] == "page"]
                if pages:
                    return connect(pages[0]["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024, open_timeout=10)
            time.sleep(0.1)
        raise BrowserError("chromium did not open its DevTools port")

    def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """One protocol command; events that arrive meanwhile are noted (uncaught exceptions)."""
        self._next_id += 1
        ident = self._next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if message.get("id") == ident:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})  # type: ignore[no-any-return]
            if message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.exceptions.append(str(details.get("exception", {}).get("description") or details.get("text")))

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]!r} raised {result['exceptionDetails'].get('text')}: "
                               f"{result['exceptionDetails'].get('exception', {}).get('description')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15.0) -> Any:
        """The value of ``expression`` once it is truthy (polled), else a failure naming it."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except BrowserError:
                value = None
            if value:
                return value
            time.sleep(0.1)
        raise BrowserError(f"timed out after {timeout} s waiting for {expression!r} (last value {value!r})")

    def text(self, selector: str) -> str | None:
        return self.evaluate(f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent ?? null")  # type: ignore[no-any-return]

    def click(self, selector: str) -> None:
        if not self.evaluate(f"(() => {{ const el = document.querySelector({json.dumps(selector)}); "
                             f"if (!el) return false; el.click(); return true; }})()"):
            raise BrowserError(f"nothing to click at {selector!r}")

    def type_into(self, selector: str, value: str) -> None:
        """Set an input's value as typing does (an ``input`` event follows)."""
        if not self.evaluate(f"(() => {{ const el = document.querySelector({json.dumps(selector)}); if (!el) return false; "
                             f"el.value = {json.dumps(value)}; el.dispatchEvent(new Event('input', {{bubbles: true}})); "
                             f"return true; }})()"):
            raise BrowserError(f"no input at {selector!r}")

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (not only the viewport)."""
        height = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)") or 900)
        width = int(self.evaluate("document.documentElement.clientWidth") or 1400)
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": width, "height": max(height, 600), "scale": 1})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            shutil.rmtree(self._profile, ignore_errors=True)
