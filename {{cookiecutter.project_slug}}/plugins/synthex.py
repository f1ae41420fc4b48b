"""The synthex plugin: synthetic training documents from a text-generation API.

    make synthex                                # = python -m plugins.synthex
    make synthex ARGS="--synthex.documents 500"
    make data                                   # the documents are in data/raw: tokenize them

It speaks the OpenAI chat-completions API, which OpenAI, llama.cpp's `llama-server`, vLLM,
Ollama, LM Studio and most hosted services offer: for each document it sends

    POST {synthex.base_url}/chat/completions
    {"model": synthex.model, "messages": [{"role": "user", "content": <a prompt>}],
     "max_tokens": synthex.max_tokens, "temperature": synthex.temperature}

and keeps `choices[0].message.content`. The prompts come from synthex.prompts (a text file, one
prompt per line, used in turn). The API key is read from the environment variable named by
synthex.api_key_env (SYNTHEX_API_KEY by default; none is sent when it is unset, as local servers
need none); it is never printed or written.

Documents are appended to {synthex.output_dir}/synthex.jsonl, one {"text": ...} line each, and
each is on disk before the next request: stop at any time (Ctrl+C, a network failure) and
`make synthex` continues up to synthex.documents. Documents whose text is already in the file
(ignoring case and spacing) are skipped. A progress bar counts documents, tokens and the cost
(synthex.price_per_million_tokens, if you set it).

This runs before training (it makes data), not during it: it is not in plugins.enabled.
It does not take the project's lock, so it can make the next data set while a model trains;
the training reads data/processed, which only `make data` writes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from config import SynthexConfig, add_config_arguments, config_from_args
from errors import DataError, run_cli

OUTPUT_NAME = "synthex.jsonl"
RETRY_WAITS = (1.0, 2.0, 4.0, 8.0)  # seconds before each retry of a passing failure
MAX_DUPLICATES_IN_A_ROW = 20  # then the API is not giving new text: stop and say so


def fingerprint(text: str) -> str:
    """The same for texts that differ only in case and spacing."""
    return hashlib.sha256(" ".join(text.lower().split()).encode()).hexdigest()


# ---- the output file ----


def read_existing(path: Path) -> set[str]:
    """Fingerprints of the documents already in `path`. A last line cut short by a crash is
    removed first (it was never a whole document)."""
    if not path.exists():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data[: data.rfind(b"\n") + 1]
        with open(path, "r+b") as f:
            f.truncate(len(keep))
        print(f"Removed an unfinished last line from {path} (an interrupted write)")
        data = keep
    seen = set()
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            text = json.loads(line).get("text")
        except (ValueError, AttributeError):
            continue
        if isinstance(text, str) and text.strip():
            seen.add(fingerprint(text))
    return seen


def append_document(path: Path, record: dict[str, Any]) -> None:
    """One line, flushed and synced: a document paid for is never lost."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_prompts(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"the prompts file {path} does not exist",
                        "create it with one prompt per line (synthex.prompts in llm.config.js "
                        "names it)")
    prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise DataError(f"{path} holds no prompts", "write one prompt per line (# comments are "
                        "skipped)")
    return prompts


# ---- the API ----


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reported: bool = False  # the API sent token counts at least once

    def add(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.completion_tokens += int(usage.get("completion_tokens") or 0)
            self.reported = True

    def cost(self, price_per_million: float) -> float:
        return (self.prompt_tokens + self.completion_tokens) * price_per_million / 1e6


class ChatClient:
    """POST /chat/completions with retries on passing failures (network, 429, 5xx)."""

    def __init__(self, settings: SynthexConfig) -> None:
        self.settings = settings
        self.url = settings.base_url.rstrip("/") + "/chat/completions"
        self.key = os.environ.get(settings.api_key_env, "")

    def complete(self, prompt: str) -> tuple[str, Any]:
        """(the answer's text, the API's usage record)."""
        s = self.settings
        body = json.dumps({"model": s.model, "messages": [{"role": "user", "content": prompt}],
                           "max_tokens": s.max_tokens, "temperature": s.temperature}).encode()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        last = len(RETRY_WAITS)
        for attempt in range(last + 1):
            request = urllib.request.Request(self.url, data=body, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=s.timeout) as response:
                    return self._answer(response.read())
            except urllib.error.HTTPError as error:  # an answer, but not a good one
                if error.code not in (408, 429, 500, 502, 503, 504) or attempt == last:
                    raise self._http_error(error) from None
                wait = _retry_after(error) or RETRY_WAITS[attempt]
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:  # no answer
                if attempt == last:
                    reason = getattr(error, "reason", error)
                    raise DataError(
                        f"could not reach {self.url} ({reason}) after {attempt + 1} tries",
                        "start your API server, or check synthex.base_url (and your network); "
                        "`make synthex` continues where it stopped") from None
                wait = RETRY_WAITS[attempt]
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _answer(self, raw: bytes) -> tuple[str, Any]:
        try:
            data = json.loads(raw)
            text = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise DataError(f"{self.url} did not answer like a chat-completions API: "
                            f"{raw[:200]!r}",
                            "point synthex.base_url at an OpenAI-compatible API (it usually "
                            "ends in /v1)") from None
        return (text if isinstance(text, str) else ""), data.get("usage")

    def _http_error(self, error: urllib.error.HTTPError) -> DataError:
        detail = error.read()[:300].decode("utf-8", errors="replace").replace(self.key or "\0",
                                                                              "***")
        if error.code in (401, 403):
            where = (f"the key in ${self.settings.api_key_env}" if self.key
                     else f"no key (${self.settings.api_key_env} is not set)")
            return DataError(f"{self.url} refused the request ({error.code}) with {where}",
                             f"set {self.settings.api_key_env} to a valid API key")
        if error.code == 404:
            return DataError(f"{self.url} does not exist (404): {detail}",
                             "synthex.base_url should be the API's base, usually ending in /v1, "
                             "e.g. 'http://127.0.0.1:8080/v1'")
        return DataError(f"{self.url} answered {error.code}: {detail}",
                         "check synthex.model and the other synthex settings against your API")


def _retry_after(error: urllib.error.HTTPError) -> float | None:
    try:
        return min(60.0, float(error.headers.get("Retry-After", "")))
    except ValueError:
        return None


# ---- the job ----


def generate(settings: SynthexConfig) -> int:
    """Fill output_dir/synthex.jsonl up to settings.documents documents; return how many were
    added."""
    if not settings.model:
        raise DataError("synthex.model is empty", "name the model your API serves, e.g. "
                        "make synthex ARGS=\"--synthex.model gpt-4o-mini\"")
    prompts = read_prompts(Path(settings.prompts))
    folder = Path(settings.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / OUTPUT_NAME
    seen = read_existing(path)
    have = len(seen)
    if have >= settings.documents:
        print(f"{path} already holds {have} documents (synthex.documents = {settings.documents})")
        return 0
    client, usage = ChatClient(settings), Usage()
    added = duplicates = in_a_row = 0
    print(f"Asking {client.url} ({settings.model}) for {settings.documents - have} documents "
          f"-> {path}" + ("" if client.key else f" (no ${settings.api_key_env}: no key sent)"))
    bar = tqdm(total=settings.documents, initial=have, unit="doc", dynamic_ncols=True)
    try:
        while have + added < settings.documents:
            prompt = prompts[(have + added + duplicates) % len(prompts)]
            text, reported = client.complete(prompt)
            usage.add(reported)
            key = fingerprint(text)
            if not text.strip() or key in seen:
                duplicates += 1
                in_a_row += 1
                if in_a_row >= MAX_DUPLICATES_IN_A_ROW:
                    raise DataError(
                        f"the last {in_a_row} answers were empty or already in {path}",
                        "raise synthex.temperature or add more varied prompts")
                continue
            in_a_row = 0
            seen.add(key)
            append_document(path, {"text": text, "prompt": prompt, "model": settings.model})
            added += 1
            bar.update(1)
            bar.set_postfix(tokens=usage.prompt_tokens + usage.completion_tokens,
                            **({"cost": f"${usage.cost(settings.price_per_million_tokens):.4f}"}
                               if settings.price_per_million_tokens else {}))
    finally:
        bar.close()
        print(summary(added, have + added, duplicates, usage, settings, path))
    return added


def summary(added: int, total: int, skipped: int, usage: Usage, settings: SynthexConfig,
            path: Path) -> str:
    tokens = (f"{usage.prompt_tokens:,} prompt + {usage.completion_tokens:,} completion tokens"
              if usage.reported else "the API reported no token counts")
    cost = (f", about ${usage.cost(settings.price_per_million_tokens):.4f}"
            if settings.price_per_million_tokens and usage.reported else "")
    return (f"Added {added} documents ({total} in {path}); skipped {skipped} empty or duplicate "
            f"answers; {tokens}{cost}. Next: make data")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m plugins.synthex", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    cfg = config_from_args(parser.parse_args(argv))
    generate(cfg.synthex)


if __name__ == "__main__":
    run_cli(main)
