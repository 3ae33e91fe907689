"""`hf-promptseg train` / `accelerate launch -m hf_promptseg train`: fine-tune SAM (or DINOv) from a config and flags.

    hf-promptseg train --config examples/configs/synthetic-tiny.yaml --output-dir run
    hf-promptseg train --family dinov --config examples/configs/dinov-scenes-tiny.yaml --output_dir run
    accelerate launch -m hf_promptseg train --config examples/configs/cod-sam-vit-b.yaml --output-dir run
    ACCELERATE_USE_CPU=1 torchrun --standalone --nproc_per_node 2 -m hf_promptseg train --config ... --output-dir run

Flags override the config file; every field of `ModelArguments`, `DataArguments` and
`SegmentationTrainingArguments` (with `--family dinov`: of `DinovTrainingArguments`) is a flag (`--help` lists
them). Rerunning with the same `--output-dir` resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hf_promptseg.training.arguments import DataArguments, ModelArguments, SegmentationTrainingArguments

ARGUMENT_CLASSES = (ModelArguments, DataArguments, SegmentationTrainingArguments)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A flat mapping of argument names from a `.yaml`/`.yml` or `.json` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    from hf_promptseg.utils.files import CorruptFileError, read_json

    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            values = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise CorruptFileError(path, f"invalid YAML ({' '.join(str(err).split())})") from err
    elif path.suffix == ".json":
        values = read_json(path, required=True)
    else:
        raise ValueError(f"config file must be .yaml, .yml or .json, got {path.name}")
    if not isinstance(values, dict):
        raise CorruptFileError(path, f"expected a mapping of argument names to values, got {type(values).__name__}")
    return values


def _family_arguments(argv: Sequence[str] | None) -> tuple[str, list[str]]:
    """(`--family` value, the other arguments): "sam" (default) or "dinov"."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--family", choices=("sam", "dinov"), default="sam")
    known, rest = pre.parse_known_args(argv)
    return known.family, rest


def parse_train_arguments(argv: Sequence[str] | None = None, argument_classes: tuple | None = None) -> tuple:
    """Parse `--config FILE` (optional) and flags into the argument dataclasses; flags win. Without
    `argument_classes`, `--family dinov` picks `DinovTrainingArguments`, else SAM's three. A config key that is no
    argument is a `ValueError` naming it."""
    from transformers import HfArgumentParser

    family, argv = _family_arguments(argv)
    if argument_classes is None:
        from hf_promptseg.training.dinov_trainer import DinovTrainingArguments

        argument_classes = (DinovTrainingArguments,) if family == "dinov" else ARGUMENT_CLASSES
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, rest = pre.parse_known_args(argv)
    parser = HfArgumentParser(argument_classes, prog="hf-promptseg train", description=__doc__.split("\n\n")[0])
    parser.epilog = "--config FILE: YAML or JSON mapping of any of these arguments (flags override it)"
    if known.config:
        values = read_config_file(known.config)
        valid = {action.dest for action in parser._actions}
        unknown = sorted(set(values) - valid)
        if unknown:
            raise ValueError(f"{known.config}: unknown arguments {unknown}")
        parser.set_defaults(**values)
    return tuple(parser.parse_args_into_dataclasses(args=list(rest)))


def main_dinov(argv: Sequence[str]) -> int:
    from hf_promptseg.training.dinov_trainer import DinovTrainer, DinovTrainingArguments

    (args,) = parse_train_arguments(argv, (DinovTrainingArguments,))
    results = DinovTrainer(args).train()
    if "stopped_at_step" in results:
        print(f"stopped at step {results['stopped_at_step']}; rerun with the same --output_dir to resume")
    else:
        print(json.dumps({"steps": results["steps"], "last": results["history"][-1:]}, indent=2))
        print(f"model: {results['final']}")
        if "best" in results:
            print(f"best model: {results['best']} ({results['metric_for_best']} {results['best_metric']:.4f} at "
                  f"step {results['best_step']})")  # fmt: skip
        if "pushed" in results:
            print(f"pushed: {results['pushed']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from hf_promptseg.training.trainer import SegmentationTrainer

    family, argv = _family_arguments(argv)
    if family == "dinov":
        return main_dinov(argv)
    model_args, data_args, training_args = parse_train_arguments(argv, ARGUMENT_CLASSES)
    results = SegmentationTrainer(model_args, data_args, training_args).train()
    if "after" in results:
        print(json.dumps({"before": results["before"], "after": results["after"]}, indent=2))
        print(f"best model: {Path(training_args.output_dir) / 'best'}")
    else:
        print(f"stopped at step {results['stopped_at_step']}; rerun with the same --output-dir to resume")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="fine-tune SAM (SAM-Adapter, LoRA, full, decoder) or, with --family dinov, DINOv",
        add_help=False,
    )
    parser.set_defaults(func=lambda args: main(args.extra_args), accepts_extra_args=True)


if __name__ == "__main__":
    sys.exit(main())
