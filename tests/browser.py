"""Open a page in headless Chromium and record what a reader's browser would see.

A small client of the Chrome DevTools protocol (over the `websockets` package):
the console messages and exceptions, every request the page makes, and the
decoded size of every image. `find_chromium` returns None where Chromium is not
installed; the tests that need it skip then, naming the Debian package.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-file-access-from-files",
)

# lazy images (below the fold, in closed <details>) are asked for now, and each is decoded
_IMAGES = """Promise.all(Array.from(document.images).map(i => {
        i.loading = 'eager';
        return i.decode().then(() => true, () => false);
    })).then(decoded => JSON.stringify(Array.from(document.images).map((i, k) => ({
        src: i.getAttribute('src').slice(0, 120), complete: i.complete && decoded[k],
        width: i.naturalWidth}))))"""


def find_chromium() -> str | None:
    """The Chromium executable, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageVisit:
    """What loading one page produced."""

    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    load_seconds: float = float("nan")


def _devtools_port(proc: subprocess.Popen, profile: Path, timeout: float) -> int:
    # Chromium writes the port it chose into DevToolsActivePort of its profile
    marker = profile / "DevToolsActivePort"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if marker.is_file():
            text = marker.read_text().split()
            if text:
                return int(text[0])
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with code {proc.returncode} before listening")
        time.sleep(0.05)
    raise RuntimeError(f"chromium did not open its DevTools port within {timeout} s")


def visit(page: Path, *, browser: str, timeout: float = 60.0) -> PageVisit:
    """Load `page` (a local HTML file) and record console errors, requests and images."""
    from websockets.sync.client import connect

    with tempfile.TemporaryDirectory(
        prefix="cytokit-chromium-", ignore_cleanup_errors=True
    ) as profile:
        proc = subprocess.Popen(
            [
                browser,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port = _devtools_port(proc, Path(profile), timeout)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                targets = json.load(r)
            url = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
            with connect(url, max_size=None, open_timeout=timeout) as ws:
                return _drive(ws, page, timeout)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _drive(ws, page: Path, timeout: float) -> PageVisit:
    seen = PageVisit()
    counter = iter(range(1, 1_000_000))
    pending: dict[int, dict] = {}

    def send(method: str, **params) -> int:
        n = next(counter)
        ws.send(json.dumps({"id": n, "method": method, "params": params}))
        return n

    def pump(until) -> None:
        end = time.monotonic() + timeout
        while not until():
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{page}: no answer from chromium within {timeout} s")
            msg = json.loads(ws.recv(timeout=left))
            if "id" in msg:
                pending[msg["id"]] = msg
                continue
            method, params = msg.get("method"), msg.get("params", {})
            if method == "Network.requestWillBeSent":
                seen.requests.append(params["request"]["url"])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                seen.console_errors.append(
                    " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
                )
            elif method == "Runtime.exceptionThrown":
                seen.console_errors.append(json.dumps(params.get("exceptionDetails", {}))[:300])
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                e = params["entry"]
                seen.console_errors.append(f"{e.get('text')} {e.get('url', '')}".strip())
            elif method == "Page.loadEventFired":
                pending["load"] = params

    for method in ("Network.enable", "Runtime.enable", "Log.enable", "Page.enable"):
        n = send(method)
        pump(lambda n=n: n in pending)
    start = time.monotonic()
    send("Page.navigate", url=page.resolve().as_uri())
    pump(lambda: "load" in pending)
    seen.load_seconds = time.monotonic() - start
    n = send("Runtime.evaluate", expression=_IMAGES, returnByValue=True, awaitPromise=True)
    pump(lambda: n in pending)
    seen.images = json.loads(pending[n]["result"]["result"]["value"])
    return seen
