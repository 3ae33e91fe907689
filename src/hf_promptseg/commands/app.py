"""`hf-promptseg app`: the interactive web app (Gradio) on loopback, over `hf_promptseg.app`.

Tabs: Prompt (clicks and a box for one object, candidates with predicted IoU, undo, PNG / COCO RLE download),
Everything (automatic mask generation; sliders re-filter cached candidates), Prompt-free (a SAM-Adapter's
probability map; needs `--adapter`) and In-context (DINOv; the embedded demo DINOv without `--dinov`).
Needs the `app` extra: `pip install "hf-promptseg[app]"`.
"""

from __future__ import annotations

import argparse

from hf_promptseg.models.sam.encoder_backends import ENCODER_BACKENDS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "app", help="interactive segmentation in the browser (Gradio)", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("--sam", default=None, help="SAM directory or Hub id (default: the embedded demo SAM)")
    parser.add_argument("--adapter", default=None, help="SAM-Adapter directory or Hub id (Prompt-free tab)")
    parser.add_argument(
        "--dinov", default=None, help="DINOv directory or Hub id (In-context tab; default: the embedded demo DINOv)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the next free)")
    parser.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    parser.add_argument("--max-pixels", type=int, default=None, help="largest accepted image, in pixels")
    parser.add_argument("--max-file-size", default="25mb", help="largest accepted upload (e.g. 25mb)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's; 1 is far faster on a machine busy with other jobs)")  # fmt: skip
    parser.add_argument("--encoder-backend", default="default", choices=ENCODER_BACKENDS,
                        help="how the SAM image encoder runs (see docs/app.md for measurements)")  # fmt: skip
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise SystemExit('`hf-promptseg app` needs Gradio: pip install "hf-promptseg[app]"') from None
    from hf_promptseg.app.blocks import AppModels, build_app, launch_app
    from hf_promptseg.app.uploads import MAX_PIXELS

    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"--threads must be positive, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)

    models = AppModels.load(args.sam, args.adapter, args.dinov, device=args.device,
                            max_pixels=args.max_pixels or MAX_PIXELS, encoder_backend=args.encoder_backend)  # fmt: skip
    launch_app(build_app(models), host=args.host, port=args.port, share=args.share, max_file_size=args.max_file_size)
    return 0
