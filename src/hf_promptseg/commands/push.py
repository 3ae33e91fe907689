"""`hf-promptseg push DIR REPO_ID`: upload a saved model, adapter or prompt bank with its model card in one commit."""

from __future__ import annotations

import argparse
from pathlib import Path

from hf_promptseg.hub import push_directory


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push",
        help="upload a saved model, adapter or prompt bank with its model card in one commit",
        description=push_directory.__doc__,
    )
    parser.add_argument("local_dir", type=Path, metavar="DIR")
    parser.add_argument("repo_id", metavar="REPO_ID")
    parser.add_argument("--private", action="store_true", default=None)
    parser.add_argument("--revision", default=None, help="branch to push to (created if missing)")
    parser.add_argument("--commit-message", default="Upload with hf_promptseg")
    parser.add_argument("--base-model", default=None, help="base model id for the card (adapters, prompt banks)")
    parser.add_argument("--license", default="apache-2.0")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    url = push_directory(
        args.local_dir,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        card_kwargs={"base_model": args.base_model, "license": args.license},
    )
    print(url)
    return 0
