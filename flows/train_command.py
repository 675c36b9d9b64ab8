"""``patina train detect|inpaint|colorize|fade --data DIR --out DIR``: train a model of our own (models/training.py)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

EXIT_OK, EXIT_USAGE = 0, 2
INT_OPTIONS = ("steps", "batch", "crop", "width", "depth", "seed", "checkpoint_every", "eval_images", "workers")
TASK_HELP = {
    "detect": "the damage-mask U-Net (metrics vs the classical detector)",
    "inpaint": "the hole-filling U-Net (metrics vs Telea)",
    "colorize": "the a*b*-from-luma U-Net (metrics vs gray and flat sepia)",
    "fade": "the density curves that undo dye fading (models/fade_network.py; --steps: epochs, default 200)",
}  # the tasks of models/training_tasks.TASKS and fade (not imported here: torch would load for every command)


def add_parser(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a model of our own on synthetic damage over clean images")
    train.add_argument("task", choices=list(TASK_HELP), help="; ".join(f"{k}: {v}" for k, v in TASK_HELP.items()))
    train.add_argument("--data", required=True, type=Path, help="folder of clean training images")
    train.add_argument("--out", required=True, type=Path, help="folder for weights, checkpoint, model card")
    train.add_argument("--val", type=Path, help="folder of clean validation images (metrics vs the baseline)")
    # unset options take TrainConfig's defaults (not imported here: torch would load for every command)
    for name in INT_OPTIONS:
        train.add_argument(f"--{name.replace('_', '-')}", type=int, help="default: see TrainConfig")
    train.add_argument("--lr", type=float)
    train.add_argument("--pos-weight", type=float, help="detect: weight of damage pixels in the loss (default 4)")
    train.add_argument("--rebalance", type=float, help="colorize: weigh rare colours up (0: none, default; 1: fully)")
    train.add_argument("--init", help="fine-tune: start from this model id (patina/inpaint-unet@1) or safetensors file")
    train.add_argument("--device", help="auto (default: CUDA when present), cpu, cuda, cuda:1, ...")
    train.add_argument("--textures", help="detect/inpaint: .npz of real damage textures (real_damage.py --textures)")


def train_command(args: argparse.Namespace) -> int:
    if args.task == "fade":
        return _train_fade(args)
    from patina.models.training import TrainConfig, train

    options = (*INT_OPTIONS, "lr", "pos_weight", "rebalance", "init", "device", "textures")
    given = {name: getattr(args, name) for name in options}
    config = TrainConfig(**{name: value for name, value in given.items() if value is not None})
    return _trained(
        lambda: train(args.task, args.data, args.out, args.val, config),
        f'model: {args.out / "model.safetensors"}; use it with: catalogues = ["{args.out / "catalogue.toml"}"]',
    )


def _trained(run: Callable[[], dict], then: str) -> int:
    """Run a training; print its card's summary and ``then``, or the reason it could not start (exit 2)."""
    try:
        card = run()
    except ValueError as exc:
        print(f"patina: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps({k: card[k] for k in ("id", "sha256", "parameters", "train_seconds", "metrics")}, indent=1))
    print(then)
    return EXIT_OK


def _train_fade(args: argparse.Namespace) -> int:
    from patina.models.fade_network import train_fade

    return _trained(
        lambda: train_fade(args.data, args.out, args.val, epochs=args.steps or 200, seed=args.seed or 0),
        f"weights: {args.out / 'model.safetensors'} (the assess stage's fade curves: models/fading.py)",
    )
