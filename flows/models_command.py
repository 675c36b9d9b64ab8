"""``patina models list | verify | pull``: what models exist, whether their weights are here and intact."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from patina.models import registry
from patina.models.weights import WeightsError, pull, status

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parser(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser("models", help="list, verify and download model weights")
    sub = models.add_subparsers(dest="models_command", required=True)
    listing = sub.add_parser("list", help="every registered model: stage, licence, weights source, present or not")
    listing.add_argument("--json", action="store_true", help="one JSON object per model")
    verify = sub.add_parser("verify", help="hash the weights that are present against their sha256")
    verify.add_argument("ids", nargs="*", help="model ids (default: every model whose weights are present)")
    fetch = sub.add_parser("pull", help="download a model's weights into the cache (verified)")
    fetch.add_argument("ids", nargs="+", help="model ids")


def _specs(ids: list[str]) -> list:
    return [registry.entry(i).spec for i in ids] if ids else [e.spec for e in registry.entries()]


def models_command(args: argparse.Namespace) -> int:
    try:
        specs = _specs(getattr(args, "ids", []))
    except KeyError as exc:
        print(f"patina: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    if args.models_command == "list":
        return _list(specs, args.json)
    if args.models_command == "verify":
        return _verify(specs, explicit=bool(args.ids))
    return _pull(specs)


def _files(spec) -> list:
    """Every weights file a model needs: its own and its stage's auxiliary ones (a face detector's ONNX, the
    identity gate's models), those with weights only."""
    needed = [spec, *registry.entry(spec.id).implementation.auxiliary_weights()]
    return [each for each in needed if each.weights_uri is not None]


def _availability(spec):
    """The model's own status, made absent (naming the file and how to get it) when an auxiliary file is."""
    found = status(spec)
    for extra in _files(spec)[1:] if spec.weights_uri is None or found.present else []:
        extra_found = status(extra)
        if not extra_found.present:
            detail = f"needs {extra.id} ({extra.weights_uri}), not here: patina models pull {spec.id} fetches it"
            return dataclasses.replace(found, present=False, detail=detail)
    return found


def _list(specs: list, as_json: bool) -> int:
    defaults = set(registry.DEFAULT_MODELS.values())
    for spec in specs:
        found = _availability(spec)
        row = {
            "id": spec.id,
            "stage": spec.stage,
            "default": spec.id in defaults,
            "architecture": spec.architecture,
            "license": spec.license,
            "weights": spec.weights_uri or "none (classical)",
            "auxiliary": [extra.id for extra in _files(spec) if extra is not spec],
            "sha256": spec.sha256,
            "present": found.present,
            "location": found.location,
            "unavailable_because": None if found.present else found.detail,
        }
        if as_json:
            print(json.dumps(row))
        else:
            mark = "present" if found.present else "absent "
            star = "*" if row["default"] else " "
            print(f"{star} {spec.id:34} {spec.stage:13} {mark}  {spec.license:28} {row['weights']}")
            if not found.present:
                print(f"    {'':34} why: {found.detail}")
    if not as_json:
        print("* default model of its stage")
    return EXIT_OK


def _verify(specs: list, explicit: bool) -> int:
    failed = 0
    for spec in specs:
        files = _files(spec)
        if not files or not (explicit or status(files[0]).present):
            continue  # without ids: only the models whose own weights are here
        for each in files:
            name = spec.id if each is spec else f"{spec.id} needs {each.id}"
            found = status(each, check=True)
            if not found.present:
                detail = found.detail if each is spec else f"not here: patina models pull {spec.id} fetches it"
                print(f"MISSING  {name}: {detail}")
                failed += 1
            elif found.verified is False:
                print(f"BAD      {name}: {found.detail}")
                failed += 1
            else:
                print(f"OK       {name}: {found.location} {found.detail}".rstrip())
    return EXIT_FAILED if failed else EXIT_OK


def _pull(specs: list) -> int:
    failed = 0
    for spec in specs:
        if not _files(spec):
            print(f"patina: {spec.id} is a classical method: it has no weights to pull", file=sys.stderr)
            failed += 1
        for each in _files(spec):
            try:
                path = pull(each)
            except WeightsError as exc:
                print(f"patina: {exc}", file=sys.stderr)
                failed += 1
                continue
            print(f"{each.id}: {path}")
    return EXIT_FAILED if failed else EXIT_OK
