"""The live dashboard: the server and the callback as units, `make dashboard` following a file,
and a real headless browser watching a training run (slow; skipped without playwright or
Chromium at /usr/bin/chromium).

    python -m pytest tests/test_dashboard.py                 # ~1 minute on 2 CPU cores
    python -m pytest tests/test_dashboard.py -m "not browser"   # without the browser
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT, free_port, read_records
from dashboard import server as server_module
from dashboard.serve import MetricsFollower
from dashboard.server import DashboardServer

CHROMIUM = Path("/usr/bin/chromium")


def get(url: str, host: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for(condition, timeout: float = 10.0):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


@pytest.fixture
def server():
    dashboard = DashboardServer(port=free_port(), title="t", history=[{"type": "run", "step": 0}])
    yield dashboard
    dashboard.stop()


# ---- the server ----


def test_a_late_client_gets_the_history_then_every_new_record(server: DashboardServer) -> None:
    server.start()
    early = server.socketio.test_client(server.app)
    assert early.get_received()[0]["args"][0] == [{"type": "run", "step": 0}]
    for step in (1, 2, 3):
        assert server.publish({"type": "train", "step": step})
    received = wait_for(lambda: [record for message in early.get_received()
                                 for record in message["args"][0]])
    late = server.socketio.test_client(server.app)  # several browsers at once, one of them late
    history = late.get_received()
    assert history[0]["name"] == "history"
    assert [r["step"] for r in history[0]["args"][0]] == [0, 1, 2, 3]
    while len(received) < 3:
        received += [r for m in early.get_received() for r in m["args"][0]]
    assert [r["step"] for r in received] == [1, 2, 3]
    assert server.publish({"type": "train", "step": 4})
    for client in (early, late):
        got = wait_for(lambda c=client: c.get_received())
        assert got[0]["name"] == "records" and got[0]["args"][0] == [{"type": "train", "step": 4}]


# Records as a hostile or broken metrics.jsonl (or a plugin) may carry them: markup in keys,
# text and paths; numbers that are NaN or infinite; values that are not numbers at all.
HOSTILE = [
    {"type": "run", "step": 0, "architecture": "<b>gpt</b>", "preset": "nano", "max_steps": 10,
     "tokens_per_step": 100, "parameters": float("nan"), "started": "<i>now</i>"},
    {"type": "train", "step": 1, "loss": 2.5, "lr": 0.1, "tokens": 100, "tokens_per_sec": 9.0,
     "elapsed": 1.0, "eta": 9.0, "rss_mb": 1.0},
    {"type": "train", "step": 2, "loss": float("nan"), "lr": 0.1, "tokens": 200,
     "tokens_per_sec": float("inf"), "elapsed": "soon", "eta": float("-inf"), "rss_mb": [1]},
    {"type": "eval", "step": 2, "val_loss": float("inf"), "best": True,
     "val_<img src=x onerror=window.pwned=1>": 0.5},
    {"type": "sample", "step": 2, "prompt": "<script>window.pwned=2</script>",
     "text": "<img src=x onerror=window.pwned=3>", "continues": True},
    {"type": "checkpoint", "step": 2, "path": "checkpoints/<img src=x onerror=window.pwned=4>.pt",
     "kind": "step", "val_loss": float("nan")},
    {"type": "train", "step": "three", "loss": 1.0},  # not a step: left out
]


def strict_json(text: bytes | str) -> object:
    """json.loads that refuses NaN and Infinity, as a browser's JSON.parse does."""
    def refuse(token: str) -> None:
        raise AssertionError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_every_record_reaches_the_browser_as_valid_json() -> None:
    dashboard = DashboardServer(port=free_port(), history=HOSTILE[:3])
    try:
        dashboard.start()
        client = dashboard.socketio.test_client(dashboard.app)
        for record in HOSTILE[3:]:
            assert dashboard.publish(record)
        wait_for(lambda: len(dashboard.snapshot()) == len(HOSTILE))
        status, body = get(dashboard.url + "history.json")
        assert status == 200
        history = strict_json(body)
        assert history[2]["loss"] == "NaN" and history[2]["tokens_per_sec"] == "Infinity"
        assert history[2]["eta"] == "-Infinity" and history[5]["val_loss"] == "NaN"
        # What Socket.IO sends is the same, in the JSON it writes on the wire.
        for message in client.get_received():
            strict_json(json.dumps(message["args"][0]))
    finally:
        dashboard.stop()
    assert server_module.plain({"a": [float("nan"), {1: object}]}) == \
        {"a": ["NaN", {"1": "<class 'object'>"}]}


@pytest.mark.parametrize(("host", "says"), [
    ("no-such-host.invalid", "'no-such-host.invalid' is not a name or address this computer "
                             "knows"),
    ("192.0.2.1", "'192.0.2.1' is not an address of this computer"),  # TEST-NET-1
])
def test_a_bad_host_is_named_not_blamed_on_the_port(tmp_path: Path, host: str,
                                                    says: str) -> None:
    (tmp_path / "llm.config.js").write_text((PROJECT_ROOT / "llm.config.js").read_text())
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run([sys.executable, "-m", "dashboard.serve", "--host", host],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"Error: the dashboard cannot listen on logging.dashboard_host: {says}" in \
        result.stderr
    assert "Suggestion: use 127.0.0.1" in result.stderr and "port" not in \
        result.stderr.split("Suggestion:")[1].split("make dashboard")[0]


def test_publish_never_waits_and_drops_when_the_queue_is_full(monkeypatch) -> None:
    monkeypatch.setattr(server_module, "QUEUE_SIZE", 5)
    dashboard = DashboardServer(port=free_port())  # not started: nothing empties the queue
    assert all(dashboard.publish({"step": i}) for i in range(5))
    started = time.perf_counter()
    assert dashboard.publish({"step": 5}) is False
    assert time.perf_counter() - started < 0.5


def test_it_is_read_only(server: DashboardServer) -> None:
    server.start()
    for rule in server.app.url_map.iter_rules():
        assert rule.methods <= {"GET", "HEAD", "OPTIONS"}, rule
    status, _ = get(server.url + "history.json")
    assert status == 200
    request = urllib.request.Request(server.url + "history.json", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405
    client = server.socketio.test_client(server.app)
    client.emit("publish", {"type": "train", "step": 99})  # browsers cannot add records
    time.sleep(0.3)
    assert server.snapshot() == [{"type": "run", "step": 0}]


def test_only_requests_for_this_computer_are_answered(server: DashboardServer) -> None:
    server.start()
    assert get(server.url, host=f"localhost:{server.port}")[0] == 200
    status, body = get(server.url, host=f"attacker.example:{server.port}")  # DNS rebinding
    assert status == 403 and b"only answers on 127.0.0.1" in body
    assert get(server.url + "socket.io/?EIO=4&transport=polling", host="attacker.example")[0] \
        == 403


def test_a_busy_port_gives_the_next_free_one() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        dashboard = DashboardServer(port=port)
        try:
            assert dashboard.start().endswith(f":{dashboard.port}/") and dashboard.port > port
        finally:
            dashboard.stop()


def test_ports_browsers_refuse_are_skipped(monkeypatch) -> None:
    tried = []

    def listen(host: str, port: int):
        tried.append(port)
        raise OSError("busy")

    monkeypatch.setattr(server_module, "_listen", listen)
    with pytest.raises(OSError):
        DashboardServer(port=5058).start()
    assert tried[:4] == [5058, 5059, 5062, 5063]  # 5060, 5061 (SIP): ERR_UNSAFE_PORT


# ---- the callback, in real (micro) training runs ----


def train(*args: str) -> int:
    from training.train import main

    return main(["--logging.dashboard", "true", "--logging.dashboard_port", str(free_port()),
                 *args])


def test_a_dashboard_that_cannot_start_does_not_stop_training(micro_project: Path, monkeypatch,
                                                              capsys) -> None:
    def refuse(self):
        raise OSError("Address already in use")

    monkeypatch.setattr(DashboardServer, "start", refuse)
    assert train() == 0
    err = capsys.readouterr().err
    assert err.count("Warning: the dashboard could not start (OSError: Address already in use)") \
        == 1
    assert read_records(micro_project)[-1]["reason"] == "done"


def test_a_crashed_dashboard_drops_updates_and_training_goes_on(micro_project: Path,
                                                                monkeypatch, capsys) -> None:
    monkeypatch.setattr(server_module, "QUEUE_SIZE", 3)
    monkeypatch.setattr(DashboardServer, "_send_loop", lambda self: None)  # died at once
    assert train() == 0
    err = capsys.readouterr().err
    assert err.count("the dashboard is not keeping up") == 1
    records = read_records(micro_project)
    assert records[-1]["reason"] == "done" and len(records) > 10  # the log file has everything


def test_a_resumed_run_shows_its_earlier_history(micro_project: Path, monkeypatch) -> None:
    from training.train import main

    assert main(["--training.max_steps", "10"]) == 0
    seen = {}
    original = DashboardServer.start

    def start(self):
        seen["history"] = list(self.history)
        return original(self)

    monkeypatch.setattr(DashboardServer, "start", start)
    assert train("--resume", "auto", "--training.max_steps", "20") == 0
    steps = [(r["type"], r["step"]) for r in seen["history"]]
    assert steps[0] == ("run", 0) and steps[-1] == ("end", 10)  # the first session's records
    assert ("train", 10) in steps and ("eval", 10) in steps


# ---- make dashboard: following logs/metrics.jsonl ----


def test_the_follower_reads_appends_and_notices_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    follower = MetricsFollower(path)
    assert follower.poll() == (False, [])  # no file yet
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3')  # the last line is being written
    assert follower.poll() == (False, [{"step": 1}, {"step": 2}])
    with open(path, "a") as f:
        f.write('}\nnot json\n{"step": 4}\n')
    assert follower.poll() == (False, [{"step": 3}, {"step": 4}])
    replacement = tmp_path / "new.jsonl"
    replacement.write_text('{"step": 1, "new": true}\n' * 10)  # longer than the old file
    os.replace(replacement, path)  # a resume's truncation, a fresh run
    assert follower.poll() == (True, [{"step": 1, "new": True}] * 10)
    path.write_text('{"step": 9}\n')  # cut back in place
    assert follower.poll() == (True, [{"step": 9}])


def serve_project(folder: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.Popen([sys.executable, "-m", "dashboard.serve", "--port", str(port)],
                            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_make_dashboard_serves_a_finished_run_and_follows_the_file(micro_project: Path) -> None:
    from training.train import main

    assert main([]) == 0
    port = free_port()
    process = serve_project(micro_project, port)
    try:
        url = f"http://127.0.0.1:{port}/history.json"
        records = read_records(micro_project)
        wait_for(lambda: _answers(url), timeout=30)
        assert json.loads(get(url)[1]) == records
        with open(micro_project / "logs" / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"type": "train", "step": 21, "loss": 1.0}) + "\n")
        wait_for(lambda: len(json.loads(get(url)[1])) == len(records) + 1)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert f"Dashboard: http://127.0.0.1:{port}/" in out and "Traceback" not in err


def _answers(url: str) -> bool:
    try:
        return get(url)[0] == 200
    except OSError:
        return False


# ---- a real browser during a real run ----


@pytest.fixture
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield chromium
        chromium.close()


def points(page) -> int:  # noqa: ANN001
    return int(page.get_attribute("#chart-loss", "data-points"))


def step(page) -> int:  # noqa: ANN001
    return int(page.evaluate("document.body.dataset.step"))


@pytest.mark.browser
def test_the_page_shows_hostile_records_as_text_and_keeps_working(browser) -> None:
    """Markup in a metric's name, a sample or a path is shown as characters (no element is
    made of it, no script runs); NaN and Infinity show as those words, a gap in the charts."""
    dashboard = DashboardServer(port=free_port(), title="<b>t</b>", history=HOSTILE)
    try:
        url = dashboard.start()
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url)
        page.wait_for_function("Number(document.body.dataset.step) === 2", timeout=20_000)
        page.wait_for_timeout(700)  # a redraw (at most twice a second) and any onerror
        assert errors == []
        assert page.evaluate("window.pwned") is None  # no injected script or handler ran
        assert page.locator("#charts img, #samples img, #checkpoints img, script:not([src])"
                            ).count() == 0
        caption = page.inner_text("#charts")
        assert "val <img src=x onerror=window.pwned=1>" in caption  # its name, as text
        assert "<script>window.pwned=2</script><img src=x onerror=window.pwned=3>" in \
            page.inner_text("#samples")
        assert "<img src=x onerror=window.pwned=4>.pt (val loss NaN)" in \
            page.inner_text("#checkpoints")
        assert page.inner_text("#loss") == "NaN" and page.inner_text("#speed") == "Infinity"
        assert page.inner_text("#best") == "–" and page.inner_text("#elapsed") == "soon"
        assert "<b>gpt</b>" in page.inner_text("#facts") and page.title().startswith("<b>t</b>")
        assert points(page) == 1  # step 1's loss; step 2's NaN is a gap, "three" no step
    finally:
        dashboard.stop()


@pytest.mark.slow
@pytest.mark.browser
def test_a_browser_watches_the_run_live_and_afterwards(micro_project: Path, browser) -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    port = free_port()
    run = subprocess.Popen(
        [sys.executable, "-u", "-m", "training.train", "--training.max_steps", "400",
         "--training.eval_interval", "100", "--logging.dashboard", "true",
         "--logging.dashboard_port", str(port)],
        cwd=micro_project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = next(line.split()[1] for line in run.stdout if line.startswith("Dashboard: "))
        assert url == f"http://127.0.0.1:{port}/"
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function("Number(document.body.dataset.step) >= 20", timeout=60_000)
        first_points, first_step = points(page), step(page)
        assert first_points >= 2
        assert page.locator("#chart-loss canvas").first.bounding_box()["width"] > 100
        page.wait_for_function(f"Number(document.body.dataset.step) >= {first_step + 60}",
                               timeout=60_000)
        assert points(page) > first_points  # the chart grew while we watched
        late = browser.new_page()  # a browser that connects late gets the whole history
        late.goto(url)
        late.wait_for_function(f"Number(document.body.dataset.step) >= {first_step + 60}",
                               timeout=10_000)
        assert points(late) >= first_points + 12
        page.wait_for_function("document.body.dataset.status === 'finished'", timeout=120_000)
        assert "Once upon a time" in page.inner_text("#samples")
        assert "best.pt" in page.inner_text("#checkpoints")
        assert run.wait(timeout=60) == 0
    finally:
        run.kill()
        run.wait()
    trained = [r for r in read_records(micro_project) if r["type"] == "train"]
    assert points(page) == len(trained)  # every training record reached the page

    port = free_port()
    serving = serve_project(micro_project, port)  # make dashboard, after the run
    try:
        again = browser.new_page()
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/"), timeout=30)
        again.goto(f"http://127.0.0.1:{port}/")
        again.wait_for_function("document.body.dataset.status === 'finished'", timeout=20_000)
        assert points(again) == len(trained) and step(again) == 400
    finally:
        serving.send_signal(signal.SIGINT)
        serving.communicate(timeout=20)
