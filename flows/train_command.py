"""``patina train detect --data DIR --out DIR``: train patina's own damage detector (see models/training.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK, EXIT_USAGE = 0, 2
INT_OPTIONS = ("steps", "batch", "crop", "width", "depth", "seed", "checkpoint_every", "eval_images")


def add_parser(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a model of our own on synthetic damage over clean images")
    train.add_argument("task", choices=["detect"], help="detect: the damage-mask U-Net")
    train.add_argument("--data", required=True, type=Path, help="folder of clean training images")
    train.add_argument("--out", required=True, type=Path, help="folder for weights, checkpoint, model card")
    train.add_argument("--val", type=Path, help="folder of clean validation images (metrics vs the classical detector)")
    # unset options take TrainConfig's defaults (not imported here: torch would load for every command)
    for name in INT_OPTIONS:
        train.add_argument(f"--{name.replace('_', '-')}", type=int, help="default: see TrainConfig")
    train.add_argument("--lr", type=float)
    train.add_argument("--device", help="auto (default: CUDA when present), cpu, cuda, cuda:1, ...")


def train_command(args: argparse.Namespace) -> int:
    from patina.models.training import TrainConfig, train_detector

    given = {name: getattr(args, name) for name in (*INT_OPTIONS, "lr", "device")}
    config = TrainConfig(**{name: value for name, value in given.items() if value is not None})
    try:
        card = train_detector(args.data, args.out, args.val, config)
    except ValueError as exc:
        print(f"patina: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps({k: card[k] for k in ("id", "sha256", "parameters", "train_seconds", "metrics")}, indent=1))
    print(f'model: {args.out / "model.safetensors"}; use it with: catalogues = ["{args.out / "catalogue.toml"}"]')
    return EXIT_OK
