"""Start olah as an offline HF-compatible server over local git mirrors, for the Hub round-trip tests.

Runs with the interpreter of the separate olah environment (`.venv-olah`, see the Makefile): olah pins versions that
clash with ours. Two behaviours of olah 0.5.4 differ from the Hub and are adjusted here, in test set-up only:
a file or folder missing from a repo answers 404 `EntryNotFound` (olah answers 401/500, which breaks transformers' probes for
optional files), a missing revision answers 404 `RevisionNotFound`, and `GET /api/models/{repo}` without a revision
resolves to the default branch. The process exits by itself after `--lifetime` seconds or when its parent dies.

Usage: python olah_server.py --mirrors DIR --port PORT --workdir DIR [--lifetime SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
import time
from pathlib import Path

_API_INFO = re.compile(r"/api/models/(?P<repo>[^/]+/[^/]+)")
_FILE_ROUTES = (
    re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)"),
    re.compile(r"/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<revision>[^/]+)/(?P<path>.+)"),
)


def _repo_state(mirrors: Path, repo_id: str, revision: str, path: str) -> str | None:
    """The Hub error code for a missing revision or file, or None when the file is there (or the repo unknown)."""
    import git

    repo_dir = mirrors / "models" / repo_id
    if not repo_dir.is_dir():
        return None
    repo = git.Repo(repo_dir)
    try:
        commit = repo.commit(revision)
    except (git.BadName, ValueError):
        return "RevisionNotFound"
    try:
        commit.tree[path]
    except KeyError:
        return "EntryNotFound"
    return None


class HubCompatibility:
    """ASGI middleware making olah's offline mirror answer like the Hub where transformers relies on it."""

    def __init__(self, app, mirrors: Path) -> None:
        self.app = app
        self.mirrors = mirrors

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = scope["path"]
            info = _API_INFO.fullmatch(path)
            if info and scope["method"] == "GET":
                new_path = f"{path}/revision/main"
                scope = dict(scope, path=new_path, raw_path=new_path.encode())
            resolve = next((m for m in (r.fullmatch(path) for r in _FILE_ROUTES) if m), None)
            if resolve:
                error = _repo_state(self.mirrors, resolve["repo"], resolve["revision"], resolve["path"])
                if error is not None:
                    body = json.dumps({"error": f"{error}: {resolve['path']}@{resolve['revision']}"}).encode()
                    headers = [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"x-error-code", error.encode()),
                        (b"x-error-message", error.encode()),
                    ]
                    await send({"type": "http.response.start", "status": 404, "headers": headers})
                    await send({"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""})
                    return
        await self.app(scope, receive, send)


def _exit_when_orphaned_or_expired(lifetime: float) -> None:
    parent, deadline = os.getppid(), time.monotonic() + lifetime
    while time.monotonic() < deadline and os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirrors", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--lifetime", type=float, default=600.0)
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    config = args.workdir / "olah.toml"
    netloc = f"127.0.0.1:{args.port}"
    config.write_text(
        "[basic]\n"
        f'host = "127.0.0.1"\nport = {args.port}\n'
        f'repos-path = "{args.workdir / "repos"}"\nmirrors-path = ["{args.mirrors}"]\n'
        f'mirror-scheme = "http"\nmirror-netloc = "{netloc}"\nmirror-lfs-netloc = "{netloc}"\n'
        "[accessibility]\noffline = true\n"
    )
    os.environ["OLAH_CONFIG"] = str(config)
    os.environ["OLAH_LOG_PATH"] = str(args.workdir / "logs")
    threading.Thread(target=_exit_when_orphaned_or_expired, args=(args.lifetime,), daemon=True).start()

    import uvicorn
    from olah.server import app

    uvicorn.run(HubCompatibility(app, args.mirrors), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
