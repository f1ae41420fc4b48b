"""The dashboard's web server: one page, the run's records pushed to it live over Socket.IO.

    server = DashboardServer(host="127.0.0.1", port=5050)
    server.start()                       # serves in background threads; server.url says where
    server.publish({"type": "train", "step": 10, "loss": 3.2, ...})   # never blocks
    server.stop()

The records are the lines of logs/metrics.jsonl (training/callbacks/progress.py lists them).
The server keeps every record it was given, so a browser that connects late first receives the
whole history ("history" event), then new records as they come ("records" events, in small
batches). Any number of browsers can watch.

Why a bounded queue: `publish` is called from the training loop, which must never wait for a web
server. It puts the record in a queue of QUEUE_SIZE and returns at once; a background thread
moves records from the queue to the history and to the browsers. If that thread is slow or has
died, the queue fills up and `publish` drops the record and returns False (the caller logs it
once). The history still comes back complete from logs/metrics.jsonl with `make dashboard`.

Read-only by design: the page and the Socket.IO channel only send data to the browser; no route
writes a file, runs code or changes the run, and events from browsers are ignored. Records hold
numbers, sample text and file names, never the config or a secret. It listens on 127.0.0.1 (this
computer only) unless logging.dashboard_host says otherwise, and answers only requests addressed
to this computer's names while it does, so a web page elsewhere cannot read it through DNS
tricks. It uses Flask's built-in server (Werkzeug), which is fine for a few local browsers.
"""

from __future__ import annotations

import contextlib
import errno
import math
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, render_template
from flask_socketio import SocketIO
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from config import BROWSER_UNSAFE_PORTS

QUEUE_SIZE = 1000  # records waiting to be sent; a full queue drops new ones
BATCH_SECONDS = 0.1  # records that arrive this close together go to browsers in one message
PORT_ATTEMPTS = 50  # a busy port: try the next ones
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}
FOLDER = Path(__file__).resolve().parent


def _listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on host:port (OSError when the port is taken)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as HTTP servers do
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug prints a line per request; the training's output is not the place for them."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def _only_local_hosts(app: Callable) -> Callable:
    """WSGI middleware: refuse requests whose Host header is not a loopback name. A browser
    sends the name of the site it thinks it talks to, so a page that re-points its own domain at
    127.0.0.1 (DNS rebinding) is refused instead of reading the dashboard."""

    def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in LOOPBACK_NAMES:
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"This dashboard only answers on 127.0.0.1 / localhost.\n"]
        return app(environ, start_response)

    return guarded


def plain(value: Any, depth: int = 0) -> Any:
    """`value` as what JSON can carry for the browser: NaN and the infinities (which Python's
    json writes as bare tokens that no browser parses) become the strings "NaN", "Infinity" and
    "-Infinity", anything that is not JSON becomes its text, and nesting stops at 20 levels.
    Records are data: the page writes every string as text, never as HTML."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth < 20 and isinstance(value, dict):
        return {str(key): plain(item, depth + 1) for key, item in value.items()}
    if depth < 20 and isinstance(value, (list, tuple)):
        return [plain(item, depth + 1) for item in value]
    return str(value)


class HostError(OSError):
    """logging.dashboard_host is not an address this computer can listen on."""


class DashboardServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 5050, title: str = "training",
                 history: Iterable[dict[str, Any]] = ()) -> None:
        self.host, self.port, self.title = host, port, title
        self.history: list[dict[str, Any]] = [plain(record) for record in history]
        self.lock = threading.Lock()  # guards history while the sender appends to it
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=QUEUE_SIZE)
        self.stopping = threading.Event()
        self.http: BaseWSGIServer | None = None
        self.threads: list[threading.Thread] = []
        self.app, self.socketio = self._build_app()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}/"

    # ---- the web app ----

    def _build_app(self) -> tuple[Flask, SocketIO]:
        app = Flask("dashboard", template_folder=str(FOLDER / "templates"),
                    static_folder=str(FOLDER / "static"))
        # Threads, not eventlet/gevent: the server shares the process with a training run.
        # cors_allowed_origins is left at its default: only pages from this server may connect.
        socketio = SocketIO(app, async_mode="threading")

        @app.get("/")
        def index() -> str:
            return render_template("index.html", title=self.title)

        @app.get("/history.json")
        def history() -> Any:  # the same records as the page gets, for scripts and curl
            return jsonify(self.snapshot())

        @socketio.on("connect")
        def connect() -> None:
            from flask import request

            socketio.emit("history", self.snapshot(), to=request.sid)

        return app, socketio

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.history)

    # ---- records in ----

    def publish(self, record: dict[str, Any]) -> bool:
        """Queue one record for the browsers; False (and nothing waits) when the queue is full."""
        try:
            self.queue.put_nowait(record)
            return True
        except queue.Full:
            return False

    def reset(self, history: Iterable[dict[str, Any]] = ()) -> None:
        """Replace the whole history (a new run started in the file being followed); every
        open page starts over with it."""
        with self.lock:
            self.history = [plain(record) for record in history]
        self.socketio.emit("history", self.snapshot())

    def _send_loop(self) -> None:
        """Move queued records to the history and to every browser, a small batch at a time."""
        while not self.stopping.is_set():
            try:
                batch = [self.queue.get(timeout=0.2)]
            except queue.Empty:
                continue
            self.stopping.wait(BATCH_SECONDS)
            with contextlib.suppress(queue.Empty):
                while len(batch) < QUEUE_SIZE:
                    batch.append(self.queue.get_nowait())
            batch = [plain(record) for record in batch]  # (here: off the training's path)
            with self.lock:
                self.history.extend(batch)
            self.socketio.emit("records", batch)

    def drain(self, timeout: float = 1.0) -> None:
        """Wait (at most `timeout` seconds) until the queued records were sent."""
        deadline = time.monotonic() + timeout
        while not self.queue.empty() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(BATCH_SECONDS + 0.05)  # the batch being sent when the queue emptied

    # ---- serving ----

    def start(self) -> str:
        """Listen on host:port, or the next free port; serve in daemon threads. Returns the URL.

        Raises OSError when no port in PORT_ATTEMPTS could be bound, HostError when the host
        is not a name or an address of this computer (no port would help).
        """
        try:
            socket.getaddrinfo(self.host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError, ValueError) as error:  # unknown name, NUL, too long
            raise HostError(f"{self.host!r} is not a name or address this computer knows "
                            f"({getattr(error, 'strerror', None) or error})") from None
        app = self.app.wsgi_app  # Flask routes and, wrapped around them, the Socket.IO channel
        if self.host in LOOPBACK_NAMES:
            self.app.wsgi_app = _only_local_hosts(app)
        error: OSError | None = None
        for port in range(self.port, min(self.port + PORT_ATTEMPTS, 65536)):
            if port in BROWSER_UNSAFE_PORTS:  # free, but no browser would open it
                continue
            try:
                listening = _listen(self.host, port)
            except OSError as busy:  # in use, or not ours to bind
                if busy.errno == errno.EADDRNOTAVAIL:  # an address of another computer
                    raise HostError(f"{self.host!r} is not an address of this computer "
                                    f"({busy.strerror})") from None
                error = busy
                continue
            # Werkzeug serves the socket we bound (it exits the process on a bind error of its
            # own, so it never binds here).
            with listening:
                self.http = make_server(self.host, port, self.app, threaded=True,
                                        request_handler=_QuietHandler, fd=listening.fileno())
            self.port = port
            break
        if self.http is None:
            raise error or OSError(f"no free port from {self.port}")
        for target in (self.http.serve_forever, self._send_loop):
            thread = threading.Thread(target=target, name="dashboard", daemon=True)
            thread.start()
            self.threads.append(thread)
        return self.url

    def stop(self) -> None:
        self.stopping.set()
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
        for thread in self.threads:
            thread.join(timeout=2)
