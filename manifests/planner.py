"""The planner: what a run must do, from the manifest, the provenance log and the configured steps.

Pure: items, a provenance table and the configured steps in, a :class:`Plan` out. An item is

* ``new``: never processed into this output;
* ``failed``: its last attempt failed (it is retried);
* ``source``: its master changed (another size or modification stamp, or another checksum);
* ``changed``: a step's model, weights or parameters differ from the last successful run:
  the first such step is named, and it and every step after it must run;
* ``unchanged``: every chain key matches the last successful run: nothing to do;

and an id in the log but not in the manifest is ``removed`` (reported, never deleted).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from patina.manifests.items import Item
from patina.manifests.provenance import chain_key, source_chain_key

StepIdentity = tuple[str, str, str | None, dict[str, Any]]  # (stage, model_id, model_sha256, params)


@dataclass(frozen=True)
class Plan:
    new: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    changed: dict[str, str] = field(default_factory=dict)  # item id -> first step to run again
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    # changed items: (index of the first step to run, chain key of the step before it)
    resume_points: dict[str, tuple[int, str]] = field(default_factory=dict)
    resume: dict[str, tuple[int, str]] = field(default_factory=dict)  # those whose intermediate is kept

    @property
    def to_run(self) -> set[str]:
        return {*self.new, *self.failed, *self.source, *self.changed}

    def counts(self) -> dict[str, Any]:
        return {
            "new": len(self.new),
            "failed": len(self.failed),
            "source_changed": len(self.source),
            "changed": dict(Counter(self.changed.values())),
            "unchanged": len(self.unchanged),
            "removed": len(self.removed),
            "resumed": len(self.resume),
            "to_run": len(self.to_run),
        }


def describe_counts(counts: dict[str, Any]) -> str:
    """One line a person reads: what will run and why, what is left alone."""
    changed = ", ".join(f"{n} changed from {stage}" for stage, n in sorted(counts["changed"].items()))
    reasons = [f"{counts['new']} new", f"{counts['failed']} failed before"]
    reasons.append(f"{counts['source_changed']} masters changed")
    return (
        f"{counts['to_run']} to run ({', '.join(reasons + ([changed] if changed else []))}), "
        f"{counts['unchanged']} unchanged, {counts['removed']} removed from the manifest (kept)"
    )


def last_attempts(history: pa.Table) -> dict[str, list[dict[str, Any]]]:
    """Each item's rows from the latest run that processed it, in step order."""
    if history.num_rows == 0:
        return {}
    latest = history.group_by("item_id").aggregate([("run_id", "max")])
    keep = pa.table({"item_id": latest["item_id"], "run_id": latest["run_id_max"]})
    rows = history.join(keep, ["item_id", "run_id"], join_type="inner").sort_by(
        [("item_id", "ascending"), ("stage_index", "ascending")]
    )
    attempts: dict[str, list[dict[str, Any]]] = {}
    columns = ["item_id", "stage", "stage_index", "status", "chain_key", "source_sha256", "decisions"]
    for row in rows.select(columns).to_pylist():
        attempts.setdefault(row["item_id"], []).append(row)
    return attempts


def plan(
    items: Sequence[Item],
    history: pa.Table,
    steps: Sequence[StepIdentity],
    write_step: Callable[[dict[str, Any]], StepIdentity],
    stamps: dict[str, str | None],
) -> Plan:
    """Classify every item (see the module docstring).

    ``steps``: the configured stages' identities, in order; ``write_step(read_decisions)``:
    the write step's identity for an item (its params depend on its format); ``stamps``: each item's
    current source stamp (:func:`patina.manifests.storage.source_stamp`), None if unknown.
    """
    result = Plan()
    attempts = last_attempts(history)
    for item in items:
        rows = attempts.get(item.item_id)
        if not rows:
            result.new.append(item.item_id)
            continue
        if rows[-1]["stage"] != "write" or rows[-1]["status"] != "ok":
            result.failed.append(item.item_id)
            continue
        read = rows[0]
        decisions = _json(read["decisions"])
        sha = read["source_sha256"]
        moved = stamps.get(item.item_id) is None or stamps[item.item_id] != decisions.get("source_stamp")
        if moved or (item.checksum and item.checksum[0] == "sha256" and item.checksum[1] != sha):
            result.source.append(item.item_id)
            continue
        expected = _expected_keys(sha, [*steps, write_step(decisions)])
        recorded = [(r["stage"], r["chain_key"]) for r in rows[1:]]
        mismatch = [k for k, step in enumerate(expected) if k >= len(recorded) or recorded[k] != step]
        if not mismatch and len(recorded) == len(expected):
            result.unchanged.append(item.item_id)
            continue
        first = mismatch[0] if mismatch else len(expected) - 1
        result.changed[item.item_id] = expected[first][0]
        if first > 0:  # steps are numbered from 1 (0 is the read): resume at first + 1
            result.resume_points[item.item_id] = (first + 1, expected[first - 1][1])
    listed = {item.item_id for item in items}
    result.removed.extend(sorted(set(attempts) - listed))
    return result


def _expected_keys(source_sha256: str, steps: Sequence[StepIdentity]) -> list[tuple[str, str]]:
    key, out = source_chain_key(source_sha256), []
    for stage, model_id, sha, params in steps:
        key = chain_key(key, model_id, sha, params)
        out.append((stage, key))
    return out


def _json(text: str | None) -> dict[str, Any]:
    return json.loads(text) if text else {}
