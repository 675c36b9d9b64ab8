"""One Ray Data callable class serves every actor pool: one or more adjacent stages (and, last, the write).

A pool runs one model stage (a GPU model gets its own pool, pinned by its resources), or a
chain of adjacent stages configured to share a pool (by default the classical CPU stages:
passing pixels between pools costs more than those stages do). ``__init__`` builds each
stage once per actor (loading its weights); ``__call__`` runs a batch through them in order.
A failing item is caught and recorded; the rest of the batch goes on.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from patina.actors.intermediates import intermediate_uri, save_intermediate
from patina.actors.io_tasks import write_item
from patina.actors.item_state import EMPTY_PIXELS, ItemState, Step, decode_mask, encode_mask
from patina.actors.settings import RunSettings, StageSettings, stage_identity
from patina.models.image import to_transport, to_working
from patina.models.registry import build_stage, load_extensions
from patina.models.stage import StageInput, StageOutput
from patina.models.tiling import TiledResult, can_tile, is_large, run_large

log = logging.getLogger(__name__)

Result = tuple[float, float, StageOutput | TiledResult | BaseException]  # (started, seconds, outcome)


@dataclass
class _Batch:
    """The rows of one Ray Data batch while the actor's stages work on them.

    Between the stages of one actor, pixels stay working float32 and masks stay arrays;
    :meth:`finish` turns them back into transport pixels and encoded masks once, at the end.
    """

    rows: list[dict[str, Any]]
    states: list[ItemState]
    images: list[np.ndarray]  # uint16 transport pixels, or float32 working pixels
    masks: list[bytes | np.ndarray | None]  # encoded damage mask, or the mask itself

    def working(self, i: int) -> np.ndarray:
        if self.images[i].dtype != np.float32:
            self.images[i] = to_working(self.images[i])
        return self.images[i]

    def transport(self, i: int) -> np.ndarray:
        if self.images[i].dtype == np.float32:
            self.images[i] = to_transport(self.images[i])
        return self.images[i]

    def mask(self, i: int) -> np.ndarray | None:
        if isinstance(self.masks[i], bytes | np.bytes_):
            self.masks[i] = decode_mask(bytes(self.masks[i]))
        return self.masks[i]

    def finish(self) -> tuple[list[np.ndarray], list[bytes]]:
        images = [self.transport(i) for i in range(len(self.images))]
        masks = [m if isinstance(m, bytes | np.bytes_) else encode_mask(m) for m in self.masks]
        return images, masks


class StageActor:
    """Runs one configured stage, or a chain of adjacent ones, over batches of pipeline rows."""

    def __init__(
        self,
        settings: StageSettings | tuple[StageSettings, ...],
        stage_index: int,
        run: RunSettings | None = None,
        write: bool = False,
    ) -> None:
        chain = settings if isinstance(settings, tuple) else (settings,)
        saving = run if run is not None and run.keep_intermediates else None
        self.runners = [_StageRunner(conf, stage_index + k, saving) for k, conf in enumerate(chain)]
        # The last pool, on CPUs, writes the derivatives itself, sparing a hand-off of pixels.
        self.write_settings = run if write else None
        networks = any(r.stage.spec.architecture != "classical" for r in self.runners)
        if networks and not any(conf.resources.num_gpus for conf in chain):
            import torch  # already loaded by the network stages

            # A CPU pool has an actor per CPU: each network uses the CPUs its actor was given (one at
            # least), not every core of the machine, or the actors would trample one another.
            torch.set_num_threads(max(1, math.floor(chain[0].resources.num_cpus)))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        rows = [{k: batch[k][i] for k in batch} for i in range(len(batch["item_id"]))]
        work = _Batch(rows, [ItemState.from_json(r["state"]) for r in rows], list(batch["image"]), list(batch["mask"]))
        for runner in self.runners:
            runner.run(work)
        images, masks = work.finish()
        states = [s.to_json() for s in work.states]
        if self.write_settings is None:
            return dict(batch, image=_column(images), mask=masks, state=states)
        written = [
            write_item(dict(row, image=image, mask=mask, state=state), self.write_settings)
            for row, image, mask, state in zip(rows, images, masks, states, strict=True)
        ]
        return {"item_id": batch["item_id"], "state": [w["state"] for w in written]}


class _StageRunner:
    """One stage inside an actor: builds it once, runs it over a batch, records what happened."""

    def __init__(self, settings: StageSettings, stage_index: int, intermediates: RunSettings | None = None) -> None:
        self.settings = settings
        self.intermediate_settings = intermediates  # when set: save each result as an intermediate under its output
        load_extensions(settings.plugins, settings.catalogues)
        self.stage = build_stage(settings.model_id, settings.params)
        self.step = Step(settings.stage, stage_index, *stage_identity(settings), device=self.stage.device)
        log.info("actor ready: stage %s, model %s, device %s", settings.stage, settings.model_id, self.stage.device)

    def run(self, work: _Batch) -> None:
        live = []
        for i, state in enumerate(work.states):
            if state.failed:
                state.skip_after_failure(work.rows[i], self.step)
            elif state.resume_index <= self.step.index:  # earlier steps come from a kept intermediate
                live.append(i)
        tiled = can_tile(self.stage)
        large = [i for i in live if tiled and is_large(work.images[i].shape, self.settings.large)]
        small = [i for i in live if i not in large]
        results = self._run([self._input(work, i) for i in small]) if small else []
        results += [self._run_large(work, i) for i in large]
        for i, result in zip(small + large, results, strict=True):
            self._apply(work, i, result)
            if self.intermediate_settings is not None and not work.states[i].failed:
                self._keep(work, i)

    def _keep(self, work: _Batch, i: int) -> None:
        """Save the item as it stands after this stage, by its chain key (actors/intermediates.py)."""
        state, image = work.states[i], work.images[i]
        transport = to_transport(image) if image.dtype == np.float32 else image
        saving = self.intermediate_settings
        uri = intermediate_uri(saving.output_uri, state.chain_key)
        exif = bytes(work.rows[i].get("exif") or b"")
        save_intermediate(uri, transport, work.mask(i), exif, state.to_json(), saving.storage_options)

    def _mask(self, work: _Batch, i: int) -> np.ndarray | None:
        return work.mask(i) if self.stage.uses_mask else None

    def _input(self, work: _Batch, i: int) -> StageInput:
        return StageInput(work.working(i), self._mask(work, i), work.states[i].decisions)

    def _run_large(self, work: _Batch, i: int) -> Result:
        """One large image, tile by tile on its transport pixels (models/tiling.py)."""
        started = time.time()
        try:
            mask, decisions = self._mask(work, i), work.states[i].decisions
            result = run_large(self.stage, work.transport(i), mask, decisions, self.settings.large)
        except Exception as exc:  # noqa: BLE001 - a failure is a row
            return started, time.time() - started, exc
        return started, time.time() - started, result

    def _run(self, inputs: list[StageInput]) -> list[Result]:
        """Run the batch at once; if it fails, run item by item so only the culprits fail."""
        started = time.time()
        try:
            outputs = self.stage.process_batch(inputs)
        except Exception:  # noqa: BLE001 - isolate the failing item(s) below
            log.warning("stage %s: batch of %d failed, retrying item by item", self.settings.stage, len(inputs))
        else:
            each = (time.time() - started) / max(len(inputs), 1)
            return [(started, each, out) for out in outputs]
        results: list[Result] = []
        for item in inputs:
            t0 = time.time()
            try:
                outcome: StageOutput | BaseException = self.stage.process_batch([item])[0]
            except Exception as exc:  # noqa: BLE001 - a failure is a row
                outcome = exc
            results.append((t0, time.time() - t0, outcome))
        return results

    def _apply(self, work: _Batch, i: int, result: Result) -> None:
        started, duration, outcome = result
        row, state = work.rows[i], work.states[i]
        if isinstance(outcome, BaseException):
            state.record(row, self.step, "failed", started, duration, error=outcome)
            work.images[i], work.masks[i] = EMPTY_PIXELS, b""
            return
        state.advance(self.step)
        decisions = dict(outcome.decisions)
        state.decisions[self.step.stage] = decisions
        state.record(row, self.step, "ok" if outcome.applied else "skipped", started, duration, decisions)
        work.images[i] = outcome.transport if isinstance(outcome, TiledResult) else outcome.image
        if outcome.mask is not None:
            work.masks[i] = outcome.mask


def _column(arrays: list[np.ndarray]) -> Any:
    """A batch column of images: stacked when shapes agree, else a list (ragged)."""
    if len({a.shape for a in arrays}) == 1:
        return np.stack(arrays)
    return arrays
