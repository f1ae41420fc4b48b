"""Download a public text dataset into data/raw, with a progress bar and a sha256 checksum.

    python -m data.download --list                     # the known datasets
    python -m data.download shakespeare                # tiny shakespeare, 1.1 MB
    python -m data.download tinystories-valid          # TinyStories validation file, ~20 MB
    python -m data.download hf:roneneldan/TinyStories/TinyStoriesV2-GPT4-valid.txt
    python -m data.download https://example.com/book.txt --sha256 <hex>
    make data                                          # then train the tokenizer and tokenize

`hf:OWNER/REPO/PATH` fetches PATH from a Hugging Face Hub dataset repository (needs no account
for public datasets). Any http(s) URL works too. The file goes to data/raw/<its name> (or --out);
it is written to a hidden temporary file first and renamed only when complete and verified, so an
interrupted download never leaves a truncated file behind. An existing file is kept (--force to
download again).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from config import add_config_arguments, config_from_args
from errors import DataError, run_cli


@dataclass
class KnownDataset:
    source: str  # an http(s) URL or hf:OWNER/REPO/PATH
    description: str
    size: int | None = None  # bytes, when known: a cheap check of the download
    sha256: str | None = None  # hex digest, when published


DATASETS: dict[str, KnownDataset] = {
    "shakespeare": KnownDataset(
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "tiny shakespeare: 40,000 lines of Shakespeare's plays (1.1 MB)",
        size=1_115_394,
    ),
    "tinystories-valid": KnownDataset(
        "hf:roneneldan/TinyStories/TinyStoriesV2-GPT4-valid.txt",
        "TinyStories (GPT-4 stories), validation file (~20 MB): a quick real-data run",
    ),
    "tinystories": KnownDataset(
        "hf:roneneldan/TinyStories/TinyStoriesV2-GPT4-train.txt",
        "TinyStories (GPT-4 stories), training file (~2 GB): for GPU-sized runs",
    ),
}
BLOCK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _default_name(source: str) -> str:
    name = source.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "download.txt"
    return name if Path(name).suffix.lower() in (".txt", ".md", ".jsonl") else name + ".txt"


def _fetch_url(url: str, part: Path, timeout: float, label: str) -> str:
    """Stream `url` into `part`; return its sha256."""
    request = urllib.request.Request(url, headers={"User-Agent": "create-llm-data-download"})
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=label,
                      dynamic_ncols=True) as bar:
                while block := response.read(BLOCK):
                    f.write(block)
                    digest.update(block)
                    bar.update(len(block))
            if total is not None and part.stat().st_size != total:
                raise DataError(f"the download of {url} stopped early "
                                f"({part.stat().st_size:,} of {total:,} bytes)",
                                "run the command again")
    except urllib.error.HTTPError as error:
        raise DataError(f"could not download {url}: HTTP {error.code} {error.reason}",
                        "check the URL (open it in a browser)") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DataError(f"could not download {url}: {reason}",
                        "check your internet connection, or copy text files into data/raw "
                        "yourself (any .txt/.md/.jsonl)") from None
    return digest.hexdigest()


def _fetch_hf(spec: str, part: Path) -> str:
    """hf:OWNER/REPO/PATH from the Hugging Face Hub into `part`; return its sha256."""
    parts = spec.removeprefix("hf:").split("/", 2)
    if len(parts) < 3 or not all(parts):
        raise DataError(f"'{spec}' is not of the form hf:OWNER/REPO/PATH",
                        "e.g. hf:roneneldan/TinyStories/TinyStoriesV2-GPT4-valid.txt")
    repo_id, filename = f"{parts[0]}/{parts[1]}", parts[2]
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise DataError("downloading from the Hugging Face Hub needs the huggingface_hub package",
                        "pip install huggingface_hub") from None
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = urllib.parse.urlparse(endpoint).hostname or "huggingface.co"
    proxied = any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY"))
    if not proxied:
        try:  # offline? say so now, instead of after the Hub client's ~20 s of retries
            socket.getaddrinfo(host, 443)
        except OSError as error:
            raise DataError(f"cannot reach {host} to download {spec}: {error}",
                            "check your internet connection, or copy text files into "
                            "data/raw yourself (any .txt/.md/.jsonl)") from None
    try:
        # The Hub client shows its own progress bar and keeps a copy in its cache.
        cached = hf_hub_download(repo_id=repo_id, filename=filename, repo_type="dataset")
    except Exception as error:  # offline, 404, gated repo...: the client's message says which
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise DataError(
            f"could not download {filename} from the dataset {repo_id}: "
            f"{type(error).__name__}: {first_line}",
            "check your internet connection and the repository/file name "
            f"(https://huggingface.co/datasets/{repo_id}/tree/main)",
        ) from None
    shutil.copyfile(cached, part)
    return file_sha256(part)


def download(source: str, out: str | Path, sha256: str | None = None, size: int | None = None,
             force: bool = False, timeout: float = 30.0) -> Path:
    """Fetch an http(s) URL or hf:OWNER/REPO/PATH to `out`, verified; return the path."""
    out = Path(out)
    if out.exists() and not force:
        digest = file_sha256(out)
        if sha256 and digest != sha256.lower():
            raise DataError(f"{out} exists but its sha256 is {digest}, not {sha256}",
                            "delete it or run again with --force")
        print(f"{out} is already there (sha256 {digest}); use --force to download it again")
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(f".{out.name}.part")  # hidden: data/ readers never see a partial file
    try:
        if source.startswith("hf:"):
            digest = _fetch_hf(source, part)
        elif source.startswith(("http://", "https://")):
            digest = _fetch_url(source, part, timeout, out.name)
        else:
            raise DataError(f"unknown dataset '{source}'",
                            f"use one of {', '.join(DATASETS)}, an http(s) URL, or "
                            "hf:OWNER/REPO/PATH (python -m data.download --list)")
        actual_size = part.stat().st_size
        if size is not None and actual_size != size:
            raise DataError(f"{source} is {actual_size:,} bytes, expected {size:,}",
                            "the file changed upstream or the download was damaged; try again")
        if sha256 and digest != sha256.lower():
            raise DataError(f"checksum mismatch for {source}: sha256 {digest}, expected {sha256}",
                            "try again; if it persists the file changed upstream")
        part.replace(out)
    finally:
        part.unlink(missing_ok=True)
    check = "verified" if sha256 else "record it to check later downloads with --sha256"
    print(f"Saved {out} ({actual_size / 1e6:.1f} MB), sha256 {digest} ({check})")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m data.download",
        description="Download a text dataset into data/raw (then run `make data`).",
    )
    parser.add_argument("dataset", nargs="?",
                        help=f"{' | '.join(DATASETS)} | an http(s) URL | hf:OWNER/REPO/PATH")
    parser.add_argument("--list", action="store_true", help="list the known datasets")
    parser.add_argument("--out", help="where to save it (default: data/raw/<file name>)")
    parser.add_argument("--sha256", help="expected sha256 (hex) of the file")
    parser.add_argument("--force", action="store_true", help="download again if the file exists")
    parser.add_argument("--timeout", type=float, default=30.0, help="network timeout, seconds")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    if args.list or not args.dataset:
        print("Known datasets (python -m data.download NAME):")
        for name, known in DATASETS.items():
            print(f"  {name:18s} {known.description}")
        print("Or any http(s) URL, or hf:OWNER/REPO/PATH from the Hugging Face Hub.")
        return
    cfg = config_from_args(args)
    known = DATASETS.get(args.dataset)
    source = known.source if known else args.dataset
    out = Path(args.out) if args.out else Path(cfg.data.raw_dir) / (
        f"{args.dataset}.txt" if known else _default_name(source))
    download(source, out, sha256=args.sha256 or (known.sha256 if known else None),
             size=known.size if known else None, force=args.force, timeout=args.timeout)
    print("Next: make data")


if __name__ == "__main__":
    run_cli(main)
