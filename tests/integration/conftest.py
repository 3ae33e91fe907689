"""A real HF-compatible server (olah, offline, loopback) over local git mirrors, and a git-backed `HfApi` push."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
OLAH_PYTHON = Path(os.environ.get("HF_PROMPTSEG_OLAH_PYTHON", REPO_ROOT / ".venv-olah" / "bin" / "python"))
SERVER_LIFETIME_SECONDS = 600
GIT_IDENTITY = ["-c", "user.name=hf-promptseg-tests", "-c", "user.email=tests@localhost"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *GIT_IDENTITY, *args], check=True, capture_output=True, text=True)
    return done.stdout.strip()


@dataclass
class HubServer:
    endpoint: str
    mirrors: Path
    home: Path

    def repo_dir(self, repo_id: str) -> Path:
        return self.mirrors / "models" / repo_id

    def client(self, command: str, repo_id: str, *options: str) -> dict:
        """Run `hub_client.py` in a fresh interpreter pointed at this server; returns its JSON answer."""
        import json

        env = {**os.environ, "HF_ENDPOINT": self.endpoint, "HF_HUB_OFFLINE": "0", "HF_HOME": str(self.home)}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "src"), env.get("PYTHONPATH", "")])
        done = subprocess.run(
            [sys.executable, str(HERE / "hub_client.py"), command, repo_id, *options],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def hub_server(tmp_path_factory) -> HubServer:
    """olah on 127.0.0.1 serving `mirrors/models/<org>/<name>` git repos; skips when it cannot start."""
    if not OLAH_PYTHON.exists():
        pytest.skip(f"olah environment {OLAH_PYTHON} is absent (`make test` creates .venv-olah)")
    root = tmp_path_factory.mktemp("hub")
    mirrors = root / "mirrors"
    (mirrors / "models").mkdir(parents=True)
    port = _free_port()
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        [str(OLAH_PYTHON), str(HERE / "olah_server.py"), "--mirrors", str(mirrors), "--port", str(port),
         "--workdir", str(root / "olah"), "--lifetime", str(SERVER_LIFETIME_SECONDS)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/api/models/probe/probe", timeout=1)
            break
        except urllib.error.HTTPError:
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.skip(f"olah did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
    yield HubServer(endpoint=endpoint, mirrors=mirrors, home=root / "hf_home")
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture()
def git_backed_push(hub_server, monkeypatch) -> HubServer:
    """Route `HfApi.create_repo/create_branch/create_commit` into the server's git mirrors (no real Hub here)."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.hf_api import CommitInfo

    def create_repo(self, repo_id, **kwargs):
        repo = hub_server.repo_dir(repo_id)
        if not repo.exists():
            repo.mkdir(parents=True)
            _git(repo, "init", "-q", "-b", "main")
            _git(repo, "commit", "-q", "--allow-empty", "-m", "initial commit")
        return f"{hub_server.endpoint}/{repo_id}"

    def create_branch(self, repo_id, *, branch, exist_ok=False, **kwargs):
        repo = hub_server.repo_dir(repo_id)
        if branch not in _git(repo, "branch", "--format=%(refname:short)").split():
            _git(repo, "branch", branch, "main")

    def create_commit(self, repo_id, operations, *, commit_message, revision=None, **kwargs):
        repo = hub_server.repo_dir(repo_id)
        _git(repo, "checkout", "-q", revision or "main")
        for operation in operations:
            target = repo / operation.path_in_repo
            if isinstance(operation, CommitOperationDelete):
                _git(repo, "rm", "-q", "-r", operation.path_in_repo)
                continue
            assert isinstance(operation, CommitOperationAdd)
            target.parent.mkdir(parents=True, exist_ok=True)
            source = operation.path_or_fileobj
            target.write_bytes(source if isinstance(source, bytes) else Path(source).read_bytes())
            _git(repo, "add", operation.path_in_repo)
        _git(repo, "commit", "-q", "-m", commit_message)
        sha = _git(repo, "rev-parse", "HEAD")
        return CommitInfo(
            commit_url=f"{hub_server.endpoint}/{repo_id}/commit/{sha}",
            commit_message=commit_message,
            commit_description="",
            oid=sha,
            _endpoint=hub_server.endpoint,
        )

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    return hub_server
