"""`make synthex` against a fake chat-completions API on this machine: documents arrive in
data/raw/synthetic, a stopped run continues where it stopped, duplicates are skipped, the key is
sent but never shown, and failures are clear errors. Never a real service."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import JSONHandler, run_project_module, write_project_config

KEY = "sk-synthexkeythatmustneverbeprinted"


class FakeChatAPI:
    """POST /v1/chat/completions answering "Story number N about <prompt>"; `fail_after` makes
    every later request fail with `fail_status`; `repeat` answers the same text for requests in
    that set of request numbers."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.fail_after: int | None = None
        self.fail_status = 500
        self.repeat: set[int] = set()
        api = self

        class Handler(JSONHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.requests.append({"path": self.path, "body": body,
                                     "auth": self.headers.get("Authorization", "")})
                n = len(api.requests)
                if self.path != "/v1/chat/completions":
                    return self.answer(404, {"error": "not found"})
                if api.fail_after is not None and n > api.fail_after:
                    return self.answer(api.fail_status, {"error": {"message": "overloaded"}})
                prompt = body["messages"][-1]["content"]
                text = "The same story." if n in api.repeat else f"Story number {n}: {prompt}"
                self.answer(200, {"choices": [{"message": {"role": "assistant",
                                                           "content": text}}],
                                  "usage": {"prompt_tokens": 10, "completion_tokens": 30}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def api() -> Iterator[FakeChatAPI]:
    fake = FakeChatAPI()
    yield fake
    fake.server.shutdown()


@pytest.fixture
def project(tmp_path: Path, api: FakeChatAPI) -> Path:
    folder = tmp_path / "p"
    write_project_config(folder, {"synthex": {
        "base_url": api.url, "model": "fake-model", "documents": 6, "max_tokens": 64,
        "price_per_million_tokens": 2.0, "prompts": "prompts.txt"}})
    (folder / "prompts.txt").write_text("# a comment\nWrite about a fox.\nWrite about a boat.\n")
    return folder


def synthex(folder: Path, *args: str, key: str | None = KEY):
    # retries wait 1, 2, 4, 8 s on passing failures: keep failing tests short with a 404/401
    return run_project_module(folder, "plugins.synthex", *args,
                              env={"SYNTHEX_API_KEY": key or "", "NO_PROXY": "127.0.0.1"})


def documents(folder: Path) -> list[dict]:
    path = folder / "data" / "raw" / "synthetic" / "synthex.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_documents_arrive_with_tokens_and_cost(project: Path, api: FakeChatAPI) -> None:
    result = synthex(project)
    assert result.returncode == 0, result.stdout + result.stderr
    docs = documents(project)
    assert [d["text"] for d in docs] == [
        f"Story number {n}: Write about a {'fox' if n % 2 else 'boat'}." for n in range(1, 7)]
    assert all(d["model"] == "fake-model" for d in docs)
    body = api.requests[0]["body"]
    assert body == {"model": "fake-model", "max_tokens": 64, "temperature": 1.0,
                    "messages": [{"role": "user", "content": "Write about a fox."}]}
    assert all(r["auth"] == f"Bearer {KEY}" for r in api.requests)
    assert "Added 6 documents" in result.stdout and "60 prompt + 180 completion tokens" in \
        result.stdout and "$0.0005" in result.stdout
    assert KEY not in result.stdout + result.stderr


def test_prepare_reads_the_documents(project: Path, api: FakeChatAPI) -> None:
    from corpus.sources import open_raw_corpus

    assert synthex(project).returncode == 0
    corpus = open_raw_corpus(str(project / "data" / "raw"), 1.0, 0)
    texts = [chunk.text for chunk in corpus.chunks()]
    assert texts == [d["text"] for d in documents(project)]


def test_a_stopped_run_continues_where_it_stopped(project: Path, api: FakeChatAPI) -> None:
    api.fail_after, api.fail_status = 3, 401  # the key is revoked after 3 documents
    result = synthex(project)
    assert result.returncode == 1
    assert "Error: " in result.stderr and "SYNTHEX_API_KEY" in result.stderr
    assert "Traceback" not in result.stderr and KEY not in result.stderr
    assert len(documents(project)) == 3  # what was paid for is kept
    # a crash in the middle of a write leaves half a line: it is dropped, not kept as a document
    path = project / "data" / "raw" / "synthetic" / "synthex.jsonl"
    path.write_bytes(path.read_bytes() + b'{"text": "half a li')
    api.fail_after = None
    result = synthex(project)
    assert result.returncode == 0, result.stderr
    texts = [d["text"] for d in documents(project)]
    assert len(texts) == 6 == len(set(texts)) and "Removed an unfinished" in result.stdout
    assert synthex(project).stdout.count("already holds 6 documents") == 1  # nothing more to do


def test_duplicates_are_skipped(project: Path, api: FakeChatAPI) -> None:
    api.repeat = {2, 3, 4}
    result = synthex(project)
    assert result.returncode == 0, result.stderr
    texts = [d["text"] for d in documents(project)]
    assert len(texts) == 6 and len(set(t.lower() for t in texts)) == 6
    assert texts.count("The same story.") == 1 and "skipped 2" in result.stdout


def test_an_api_that_repeats_itself_stops_with_advice(project: Path, api: FakeChatAPI) -> None:
    api.repeat = set(range(2, 100))
    result = synthex(project)
    assert result.returncode == 1 and "raise synthex.temperature" in result.stderr
    assert len(documents(project)) == 2  # the first answer, and the first "The same story."


@pytest.mark.parametrize("change, expected", [
    ({"base_url": "http://127.0.0.1:9/v1"}, "could not reach"),
    ({"model": ""}, "synthex.model is empty"),
    ({"prompts": "missing.txt"}, "missing.txt does not exist"),
    ({"base_url": "ftp://example.com"}, "not an http(s) URL"),
])
def test_bad_settings_are_clear_errors(project: Path, change: dict, expected: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import plugins.synthex as module

    monkeypatch.setattr(module, "RETRY_WAITS", (0.0,))
    args = [item for key, value in change.items() for item in (f"--synthex.{key}", value)]
    from errors import CreateLLMError

    monkeypatch.chdir(project)
    with pytest.raises(CreateLLMError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        module.main(args)


def test_no_key_sends_no_authorization(project: Path, api: FakeChatAPI) -> None:
    result = synthex(project, key=None)
    assert result.returncode == 0 and "no key sent" in result.stdout
    assert all(r["auth"] == "" for r in api.requests)
