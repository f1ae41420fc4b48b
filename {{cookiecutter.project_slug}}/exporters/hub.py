"""export/hf/ -> a repository on the Hugging Face Hub.

    hf auth login                                   # once (or set HF_TOKEN)
    python deploy.py deploy --repo-id you/my-llm    # make deploy ARGS="--repo-id you/my-llm"

Before anything is sent, `preflight` checks what can be checked here: an export that loads
(exporters/hf.py: check_hf_folder), a token, a well-formed repository id; and it says what will be
uploaded and how big it is. Then `upload` creates the repository (private unless
deployment.private is false; an existing one of yours is reused) and uploads the folder in one
commit, retrying a few times with growing waits when the network or the Hub has a passing
problem. The token is read from HF_TOKEN or the file `hf auth login` writes; it is never
printed, logged or written anywhere (an error message that would hold it has it blanked out).
HF_ENDPOINT (read by huggingface_hub when it is imported) points everything at another Hub.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from config import valid_repo_id
from errors import DeploymentError

from .hf import check_hf_folder

# Seconds to wait before each retry of a step that failed for a passing reason.
RETRY_WAITS = (1.0, 2.0, 4.0)
TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)


@dataclass
class UploadPlan:
    folder: Path
    repo_id: str
    private: bool
    files: list[Path]
    endpoint: str
    token: str = field(repr=False)  # never shown, not even in a traceback's repr

    def summary(self) -> str:
        total = sum(p.stat().st_size for p in self.files)
        lines = [f"Uploading {self.folder}/ to {self.endpoint}/{self.repo_id} "
                 f"({'private' if self.private else 'public'}): {len(self.files)} files, "
                 f"{total / 2**20:.2f} MB"]
        lines += [f"  {p.name:<24} {p.stat().st_size:>12,} bytes" for p in self.files]
        return "\n".join(lines)


def require_hub() -> None:
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        raise DeploymentError("the `huggingface_hub` package is not installed",
                              "install it: `.venv/bin/pip install huggingface_hub`") from None


def preflight(folder: Path, repo_id: str, private: bool) -> UploadPlan:
    """Everything that can fail before an upload, checked before it: DeploymentError if not."""
    require_hub()
    from huggingface_hub import constants, get_token

    if not repo_id:
        raise DeploymentError("no Hub repository given (deployment.repo_id is empty)",
                              "pass one: `make deploy ARGS=\"--repo-id your-name/model-name\"`, "
                              "or set deployment.repo_id in llm.config.js")
    if not valid_repo_id(repo_id):
        raise DeploymentError(f"'{repo_id}' is not a Hugging Face repository id",
                              "write it as 'your-name/model-name'")
    check_hf_folder(folder)
    token = get_token()
    if not token:
        raise DeploymentError("no Hugging Face token: you are not logged in",
                              "run `hf auth login` (or set HF_TOKEN) with a token that can "
                              "write, from https://huggingface.co/settings/tokens")
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith("."))
    return UploadPlan(Path(folder), repo_id, private, files, constants.ENDPOINT, token)


def upload(plan: UploadPlan) -> str:
    """Create the repository and upload the folder; return the repository's URL."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=plan.endpoint, token=plan.token)
    url = with_retries(plan, "create the repository", lambda: api.create_repo(
        plan.repo_id, private=plan.private, exist_ok=True, repo_type="model"))
    with_retries(plan, "upload the files", lambda: api.upload_folder(
        repo_id=plan.repo_id, folder_path=str(plan.folder), repo_type="model",
        commit_message="Upload a model trained with create-llm",
        allow_patterns=[p.name for p in plan.files]))
    return str(url)


def with_retries(plan: UploadPlan, what: str, step):  # noqa: ANN001, ANN201 (any call)
    """Run step(); retry after RETRY_WAITS on passing problems; DeploymentError otherwise."""
    for attempt in range(len(RETRY_WAITS) + 1):
        try:
            return step()
        except Exception as error:  # the Hub's errors, the HTTP library's, the OS's
            status = getattr(getattr(error, "response", None), "status_code", None)
            passing = status in TRANSIENT_STATUS or status is None and is_network_error(error)
            if passing and attempt < len(RETRY_WAITS):
                print(f"Could not {what} ({describe(error, plan)}); trying again in "
                      f"{RETRY_WAITS[attempt]:g}s")
                time.sleep(RETRY_WAITS[attempt])
                continue
            raise hub_error(error, status, passing, what, plan) from None
    raise AssertionError("unreachable")


def is_network_error(error: BaseException) -> bool:
    """A connection that failed or timed out (huggingface_hub's HTTP library raises its own
    classes for these, depending on its version)."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    module = type(error).__module__.split(".")[0]
    return module in ("httpx", "httpx2", "httpcore", "requests", "urllib3") and any(
        word in type(error).__name__ for word in ("Connect", "Timeout", "Network", "Protocol"))


def describe(error: BaseException, plan: UploadPlan) -> str:
    text = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
    return text.replace(plan.token, "***")


def hub_error(error: BaseException, status: int | None, passing: bool, what: str,
              plan: UploadPlan) -> DeploymentError:
    """The DeploymentError for a step that failed for good."""
    repo, owner = plan.repo_id, plan.repo_id.split("/")[0]
    if status == 401:
        return DeploymentError(f"the Hub rejected your token (401) while trying to {what}",
                               "log in again with a valid token: `hf auth login` (or set "
                               "HF_TOKEN); https://huggingface.co/settings/tokens")
    if status == 403:
        return DeploymentError(f"your token may not write to {repo} (403): it belongs to someone "
                               f"else, or the token is read-only",
                               f"use a repository under your own name (not '{owner}/...'), or a "
                               "token with write access")
    if passing:
        return DeploymentError(f"could not reach the Hub at {plan.endpoint} to {what} "
                               f"({describe(error, plan)}), after {len(RETRY_WAITS) + 1} tries",
                               "check your internet connection (and HF_ENDPOINT if you set it), "
                               "then run `make deploy` again: nothing was changed locally")
    return DeploymentError(f"the Hub refused to {what} for {repo}: {describe(error, plan)}",
                           "read the message above; `make deploy` can simply be run again")
