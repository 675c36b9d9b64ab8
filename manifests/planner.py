"""The planner: what a run must do, from the manifest, the provenance log and the configured steps.

Pure: items, their latest attempts from the provenance log and the configured steps in, a :class:`Plan` out. An item is

* ``new``: never processed into this output;
* ``failed``: its last attempt failed (it is retried);
* ``source``: its master changed (another size or modification stamp, or another checksum);
* ``changed``: a step's model, weights or parameters differ from the last successful run:
  the first such step is named, and it and every step after it must run;
* ``derivative``: every chain key matches, but the derivative the last run wrote is missing or
  is not what it wrote (another size; with ``verify``, another sha256): it is made again;
* ``unchanged``: every chain key matches the last successful run and its derivative is there: nothing to do;

and an id in the log but not in the manifest is ``removed`` (reported, never deleted).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from patina.manifests.items import Item
from patina.manifests.provenance import next_key, source_chain_key, step_link

StepIdentity = tuple[str, str, str | None, dict[str, Any]]  # (stage, model_id, model_sha256, params)


@dataclass(frozen=True)
class Plan:
    new: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    changed: dict[str, str] = field(default_factory=dict)  # item id -> first step to run again
    derivative: list[str] = field(default_factory=list)  # unchanged chain, but the derivative missing or changed
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    # changed items: (index of the first step to run, chain key of the step before it)
    resume_points: dict[str, tuple[int, str]] = field(default_factory=dict)
    resume: dict[str, tuple[int, str]] = field(default_factory=dict)  # those whose intermediate is kept

    @property
    def to_run(self) -> set[str]:
        """The ids to run (a new set each call)."""
        return {*self.new, *self.failed, *self.source, *self.changed, *self.derivative}

    def counts(self) -> dict[str, Any]:
        return {
            "new": len(self.new),
            "failed": len(self.failed),
            "source_changed": len(self.source),
            "changed": dict(Counter(self.changed.values())),
            "derivative_changed": len(self.derivative),
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
    if counts.get("derivative_changed"):
        reasons.append(f"{counts['derivative_changed']} derivatives missing/changed")
    return (
        f"{counts['to_run']} to run ({', '.join(reasons + ([changed] if changed else []))}), "
        f"{counts['unchanged']} unchanged, {counts['removed']} removed from the manifest (kept)"
    )


@dataclass(frozen=True, slots=True)
class Attempt:
    """An item's latest attempt, as much of it as planning needs (one small object per item)."""

    source_sha256: str | None  # of the master, as read
    source_stamp: str | None  # the master's size and modification stamp, as read
    source_format: str  # the master's format, as read ("" if unread): the write step's params follow it
    final_key: str | None  # chain key after its last step
    steps_count: int  # steps after the read
    finished: bool  # its last step is a successful write
    first_row: int  # where its rows start in :class:`LatestAttempts`' table (its read row)
    output_bytes: int | None = None  # the size of the derivative it wrote (None in logs that did not record it)
    output_sha256: str | None = None  # read only when planning verifies derivatives


class LatestAttempts:
    """Each item's latest attempt (:func:`~patina.manifests.provenance.read_latest_attempts`'s rows).

    Per item one :class:`Attempt`; the chain keys of its steps stay in one Arrow table, read
    only for the items whose last key differs from the expected one (a nightly no-op reads none).
    """

    def __init__(self, latest: pa.Table) -> None:
        rows = latest.sort_by([("item_id", "ascending"), ("stage_index", "ascending")])
        n = rows.num_rows
        ids = rows["item_id"]
        if n:
            differs = pc.not_equal(ids.slice(0, n - 1), ids.slice(1)).to_numpy(zero_copy_only=False)
            last = np.flatnonzero(np.append(differs, True))
        else:
            last = np.zeros(0, np.int64)
        first = np.concatenate([[0], last[:-1] + 1]).astype(np.int64) if n else last
        reads = rows.select(["item_id", "source_sha256", "decisions"]).take(first)
        ends = rows.select(["stage", "status", "chain_key", "decisions"]).take(last)
        verified = "output_sha256" in rows.column_names  # read when planning verifies derivatives
        shas = rows["output_sha256"].take(last).to_pylist() if verified else [None] * len(last)
        stamps, formats = _read_facts(reads["decisions"].to_pylist())
        finished = pc.and_(pc.equal(ends["stage"], "write"), pc.equal(ends["status"], "ok")).to_pylist()
        written = zip(ends["decisions"].to_pylist(), finished, strict=True)
        sizes = [_written_bytes(text) if done else None for text, done in written]
        self.attempts: dict[str, Attempt] = {
            item_id: Attempt(sha, stamp, fmt, key, int(count), bool(done), int(start), size, out_sha)
            for item_id, sha, stamp, fmt, key, count, done, start, size, out_sha in zip(
                reads["item_id"].to_pylist(),
                reads["source_sha256"].to_pylist(),
                stamps,
                formats,
                ends["chain_key"].to_pylist(),
                last - first,
                finished,
                first,
                sizes,
                shas,
                strict=True,
            )
        }
        self._steps = rows.select(["stage", "chain_key"])

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.attempts

    def __len__(self) -> int:
        return len(self.attempts)

    def steps(self, item_id: str) -> tuple[tuple[str, str], ...]:
        """(stage, chain key) of every step of the item's latest attempt after the read, in order."""
        attempt = self.attempts[item_id]
        rows = self._steps.slice(attempt.first_row + 1, attempt.steps_count)
        return tuple(zip(rows["stage"].to_pylist(), rows["chain_key"].to_pylist(), strict=True))


def _written_bytes(decisions: str | None) -> int | None:
    """The size a write row recorded (``{"bytes": N}``), None if it did not."""
    value = json.loads(decisions).get("bytes") if decisions else None
    return value if isinstance(value, int) else None


Derivative = tuple[int | None, str | None] | None
"""A derivative as it is now: ``(size, sha256 or None when not verified)``, or None when it is missing."""


def derivative_intact(attempt: Attempt, now: Derivative) -> bool:
    """Whether the derivative ``attempt`` wrote is still there as written (size, and sha256 when verified)."""
    if now is None:
        return False
    size, sha = now
    if attempt.output_bytes is not None and size != attempt.output_bytes:
        return False
    return sha is None or attempt.output_sha256 is None or sha == attempt.output_sha256


def _read_facts(decisions: list[str | None]) -> tuple[list[str | None], list[str]]:
    """Source stamps and formats from the read rows' decisions (JSON), interned: masters share formats."""
    stamps, formats, seen = [], [], {}
    for text in decisions:
        found = json.loads(text) if text else {}
        stamps.append(found.get("source_stamp"))
        fmt = found.get("format") or ""
        formats.append(seen.setdefault(fmt, fmt))
    return stamps, formats


def plan(
    items: Sequence[Item],
    latest: LatestAttempts,
    steps: Sequence[StepIdentity],
    write_link: Callable[[str], tuple[str, str]],
    stamps: dict[str, str | None],
    derivatives: dict[str, Derivative] | None = None,
) -> Plan:
    """Classify every item (see the module docstring).

    ``latest``: each item's latest attempt; ``steps``: the configured stages' identities, in
    order; ``write_link(source_format)``: the write step's stage and
    :func:`~patina.manifests.provenance.step_link` for an item (its params follow the master's
    format); ``stamps``: each item's current source stamp
    (:func:`patina.manifests.storage.source_stamp`), None if unknown; ``derivatives``: each
    finished item's derivative as it is now (:data:`Derivative`; items left out are not checked).
    """
    result = Plan()
    links = [(stage, step_link(*identity)) for stage, *identity in steps]
    expected_of: dict[tuple[str | None, str], list[tuple[str, str]]] = {}  # masters shared by items: once each
    for item in items:
        attempt = latest.attempts.get(item.item_id)
        if attempt is None:
            result.new.append(item.item_id)
            continue
        if not attempt.finished:
            result.failed.append(item.item_id)
            continue
        sha = attempt.source_sha256
        moved = stamps.get(item.item_id) is None or stamps[item.item_id] != attempt.source_stamp
        if moved or (item.checksum and item.checksum[0] == "sha256" and item.checksum[1] != sha):
            result.source.append(item.item_id)
            continue
        identity = (sha, attempt.source_format)
        if (expected := expected_of.get(identity)) is None:
            expected = expected_of[identity] = _expected_keys(sha, [*links, write_link(attempt.source_format)])
        if attempt.steps_count == len(expected) and attempt.final_key == expected[-1][1]:
            # the last key covers every step before it; the derivative must still be what it wrote
            checked = derivatives is not None and item.item_id in derivatives
            intact = not checked or derivative_intact(attempt, derivatives[item.item_id])
            (result.unchanged if intact else result.derivative).append(item.item_id)
            continue
        recorded = latest.steps(item.item_id)
        mismatch = [k for k, step in enumerate(expected) if k >= len(recorded) or recorded[k] != step]
        first = mismatch[0] if mismatch else len(expected) - 1
        result.changed[item.item_id] = expected[first][0]
        if first > 0:  # steps are numbered from 1 (0 is the read): resume at first + 1
            result.resume_points[item.item_id] = (first + 1, expected[first - 1][1])
    listed = {item.item_id for item in items}
    result.removed.extend(sorted(set(latest.attempts) - listed))
    return result


def _expected_keys(source_sha256: str, links: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    key, out = source_chain_key(source_sha256), []
    for stage, link in links:
        key = next_key(key, link)
        out.append((stage, key))
    return out
