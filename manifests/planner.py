"""The planner: what a run must do, from the manifest, the provenance log and the configured steps.

Pure: items, their latest attempts from the provenance log and the configured steps in, a :class:`Plan` out. An item is

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
from patina.manifests.provenance import next_key, source_chain_key, step_link

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
        """The ids to run (a new set each call)."""
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


@dataclass(frozen=True, slots=True)
class Attempt:
    """An item's latest attempt, as much of it as planning needs (one small object per item)."""

    source_sha256: str | None  # of the master, as read
    read_decisions: str | None  # JSON of the read step's decisions (format, source stamp)
    steps: tuple[tuple[str, str], ...]  # (stage, chain key) of every step after the read, in order
    finished: bool  # its last step is a successful write


def last_attempts(latest: pa.Table) -> dict[str, Attempt]:
    """Each item's :class:`Attempt` from the rows of its latest run
    (:func:`~patina.manifests.provenance.read_latest_attempts`)."""
    rows = latest.sort_by([("item_id", "ascending"), ("stage_index", "ascending")])
    columns = [rows[name].to_pylist() for name in ("item_id", "stage", "status", "chain_key", "source_sha256")]
    decisions = rows["decisions"]
    attempts: dict[str, Attempt] = {}
    start = 0
    for end in range(1, rows.num_rows + 1):
        if end < rows.num_rows and columns[0][end] == columns[0][start]:
            continue
        item_id, stages, statuses, keys, shas = (column[start:end] for column in columns)
        attempts[item_id[0]] = Attempt(
            source_sha256=shas[0],
            read_decisions=decisions[start].as_py(),
            steps=tuple(zip(stages[1:], keys[1:], strict=True)),
            finished=stages[-1] == "write" and statuses[-1] == "ok",
        )
        start = end
    return attempts


def plan(
    items: Sequence[Item],
    attempts: dict[str, Attempt],
    steps: Sequence[StepIdentity],
    write_link: Callable[[dict[str, Any]], tuple[str, str]],
    stamps: dict[str, str | None],
) -> Plan:
    """Classify every item (see the module docstring).

    ``attempts``: each item's latest attempt (:func:`last_attempts`); ``steps``: the configured
    stages' identities, in order; ``write_link(read_decisions)``: the write step's stage and
    :func:`~patina.manifests.provenance.step_link` for an item (its params depend on its format);
    ``stamps``: each item's current source stamp
    (:func:`patina.manifests.storage.source_stamp`), None if unknown.
    """
    result = Plan()
    links = [(stage, step_link(*identity)) for stage, *identity in steps]
    for item in items:
        attempt = attempts.get(item.item_id)
        if attempt is None:
            result.new.append(item.item_id)
            continue
        if not attempt.finished:
            result.failed.append(item.item_id)
            continue
        decisions = _json(attempt.read_decisions)
        sha = attempt.source_sha256
        moved = stamps.get(item.item_id) is None or stamps[item.item_id] != decisions.get("source_stamp")
        if moved or (item.checksum and item.checksum[0] == "sha256" and item.checksum[1] != sha):
            result.source.append(item.item_id)
            continue
        expected = _expected_keys(sha, [*links, write_link(decisions)])
        recorded = attempt.steps
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


def _expected_keys(source_sha256: str, links: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    key, out = source_chain_key(source_sha256), []
    for stage, link in links:
        key = next_key(key, link)
        out.append((stage, key))
    return out


def _json(text: str | None) -> dict[str, Any]:
    return json.loads(text) if text else {}
