"""cdp — a headless Chromium driven over the DevTools protocol, for the tests
of the HTML report. Chromium talks over a pipe (--remote-debugging-pipe:
it reads JSON commands on fd 3 and writes replies and events on fd 4, each
message ending in a NUL byte), so no port, no websocket library, nothing
outside Debian's chromium package. Offline: every network-touching feature
is switched off by flag.

    with Browser() as b:
        page = b.open("file:///tmp/report.html")
        page.errors          # console errors and uncaught exceptions
        page.eval("document.title")
        page.screenshot("/tmp/shot.png")
"""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-default-apps",
         "--mute-audio", "--hide-scrollbars", "--no-default-browser-check", "--window-size=1280,900"]


class CDPError(Exception):
    pass


class Browser:
    def __init__(self, timeout=60):
        if not CHROMIUM:
            raise CDPError("chromium is not installed (Debian package 'chromium')")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="mltest.chromium.")
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        # Chromium wants the pipe on fds 3 (commands) and 4 (replies). Move
        # both ends well clear of 3 and 4 first, so the dup2 calls in the
        # child cannot overwrite one with the other.
        hi_r = os.dup2(to_chrome_r, 100)
        hi_w = os.dup2(from_chrome_w, 101)
        os.close(to_chrome_r)
        os.close(from_chrome_w)

        def child_fds():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.proc = subprocess.Popen([CHROMIUM] + FLAGS + ["--user-data-dir=" + self.profile,
                                                           "--remote-debugging-pipe", "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=child_fds, pass_fds=(3, 4))
        os.close(hi_r)
        os.close(hi_w)
        self._buf = b""
        self._next = 0
        self._events = []

    # ---- the wire ----
    def _send(self, method, params=None, session=None):
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        return self._next

    def _read(self, deadline):
        while b"\0" not in self._buf:
            if time.monotonic() > deadline:
                raise CDPError("no answer from chromium in %d s" % self.timeout)
            import select
            ready, _, _ = select.select([self._r], [], [], 0.5)
            if ready:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise CDPError("chromium closed the pipe: " + self._stderr())
                self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def _stderr(self):
        try:
            self.proc.kill()
            return self.proc.communicate(timeout=10)[1].decode(errors="replace")[-2000:]
        except Exception:
            return ""

    def call(self, method, params=None, session=None):
        want = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._read(deadline)
            if msg.get("id") == want:
                if "error" in msg:
                    raise CDPError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self._events.append(msg)

    def wait_event(self, method, session, deadline):
        while True:
            for i, ev in enumerate(self._events):
                if ev["method"] == method and ev.get("sessionId") == session:
                    return self._events.pop(i)
            msg = self._read(deadline)
            if "method" in msg:
                self._events.append(msg)

    def events(self, session):
        return [e for e in self._events if e.get("sessionId") == session]

    # ---- pages ----
    def open(self, url):
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Page", "Runtime", "Log"):
            self.call(domain + ".enable", session=session)
        self.call("Page.navigate", {"url": url}, session=session)
        self.wait_event("Page.loadEventFired", session, time.monotonic() + self.timeout)
        page.settle()
        return page

    def close(self):
        if self.proc.poll() is None:
            try:
                self.call("Browser.close")
            except CDPError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Page:
    def __init__(self, browser, session):
        self.b = browser
        self.session = session

    def settle(self):
        """Runs a no-op through the page, so events raised while it loaded
        (console messages, exceptions) have arrived."""
        self.eval("0")

    def eval(self, expression):
        r = self.b.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                             "awaitPromise": True}, session=self.session)
        if "exceptionDetails" in r:
            raise CDPError("%s threw: %s" % (expression, r["exceptionDetails"]))
        return r["result"].get("value")

    @property
    def errors(self):
        """Uncaught exceptions, console.error/assert calls, and error log
        entries (failed loads, CSP violations) since the page opened."""
        out = []
        for ev in self.b.events(self.session):
            m, p = ev["method"], ev.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append("exception: %s" % json.dumps(p.get("exceptionDetails", {}))[:500])
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console.%s: %s" % (p["type"], json.dumps(p.get("args", []))[:500]))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append("log: %s" % p["entry"].get("text", "")[:500])
        return out

    @property
    def dialogs(self):
        return [e for e in self.b.events(self.session) if e["method"] == "Page.javascriptDialogOpening"]

    def screenshot(self, path):
        data = self.b.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                           session=self.session)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def click(self, selector):
        """A real mouse click at the centre of the first element matching selector."""
        box = self.eval("(function(){var r=document.querySelector(%s).getBoundingClientRect();"
                        "return [r.left+r.width/2, r.top+r.height/2];})()" % json.dumps(selector))
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.b.call("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                      "clickCount": 1}, session=self.session)
        self.settle()
