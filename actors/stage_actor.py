"""One Ray Data callable class serves every model stage: one actor pool per stage.

``__init__`` builds the stage once per actor (loading its weights); ``__call__`` runs a batch.
A failing item is caught and recorded; the rest of the batch goes on.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from patina.actors.item_state import EMPTY_PIXELS, ItemState, Step, decode_mask, encode_mask
from patina.actors.settings import StageSettings
from patina.models.image import to_transport, to_working
from patina.models.registry import build_stage, load_plugins
from patina.models.stage import StageInput, StageOutput
from patina.models.tiling import TiledResult, can_tile, is_large, run_large

log = logging.getLogger(__name__)


class StageActor:
    """Runs one configured stage over batches of pipeline rows."""

    def __init__(self, settings: StageSettings, stage_index: int) -> None:
        self.settings = settings
        load_plugins(settings.plugins)
        self.stage = build_stage(settings.model_id, settings.params)
        spec = self.stage.spec
        self.step = Step(settings.stage, stage_index, spec.id, spec.sha256, self.stage.params_dict(), self.stage.device)
        log.info("actor ready: stage %s, model %s, device %s", settings.stage, settings.model_id, self.stage.device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        rows = [{k: batch[k][i] for k in batch} for i in range(len(batch["item_id"]))]
        states = [ItemState.from_json(r["state"]) for r in rows]
        live = [i for i, s in enumerate(states) if not s.failed]
        for i, state in enumerate(states):
            if state.failed:
                state.skip_after_failure(rows[i], self.step)
        images = list(batch["image"])
        masks = list(batch["mask"])
        large = [i for i in live if is_large(images[i].shape, self.settings.large) and can_tile(self.stage)]
        small = [i for i in live if i not in large]
        results = self._run([self._input(rows[i], states[i]) for i in small]) if small else []
        results += [self._run_large(rows[i], states[i]) for i in large]
        for i, (started, duration, result) in zip(small + large, results, strict=True):
            self._apply(rows[i], states[i], started, duration, result, images, masks, i)
        return dict(batch, image=_column(images), mask=masks, state=[s.to_json() for s in states])

    def _input(self, row: dict[str, Any], state: ItemState) -> StageInput:
        return StageInput(to_working(row["image"]), decode_mask(row["mask"]), state.decisions)

    def _run_large(self, row: dict[str, Any], state: ItemState) -> tuple[float, float, TiledResult | BaseException]:
        """One large image, tile by tile on its transport pixels (models/tiling.py)."""
        started = time.time()
        try:
            mask = decode_mask(row["mask"])
            result = run_large(self.stage, row["image"], mask, state.decisions, self.settings.large)
        except Exception as exc:  # noqa: BLE001 - a failure is a row
            return started, time.time() - started, exc
        return started, time.time() - started, result

    def _run(self, inputs: list[StageInput]) -> list[tuple[float, float, StageOutput | BaseException]]:
        """Run the batch at once; if it fails, run item by item so only the culprits fail."""
        started = time.time()
        try:
            outputs = self.stage.process_batch(inputs)
        except Exception:  # noqa: BLE001 - isolate the failing item(s) below
            log.warning("stage %s: batch of %d failed, retrying item by item", self.settings.stage, len(inputs))
        else:
            each = (time.time() - started) / max(len(inputs), 1)
            return [(started, each, out) for out in outputs]
        results = []
        for item in inputs:
            t0 = time.time()
            try:
                results.append((t0, time.time() - t0, self.stage.process_batch([item])[0]))
            except Exception as exc:  # noqa: BLE001 - a failure is a row
                results.append((t0, time.time() - t0, exc))
        return results

    def _apply(self, row, state, started, duration, result, images, masks, i) -> None:
        if isinstance(result, BaseException):
            state.record(row, self.step, "failed", started, duration, error=result)
            images[i], masks[i] = EMPTY_PIXELS, b""
            return
        state.advance(self.step)
        decisions = dict(result.decisions)
        state.decisions[self.step.stage] = decisions
        state.record(row, self.step, "ok" if result.applied else "skipped", started, duration, decisions)
        images[i] = result.transport if isinstance(result, TiledResult) else to_transport(result.image)
        if result.mask is not None:
            masks[i] = encode_mask(result.mask)


def _column(arrays: list[np.ndarray]) -> Any:
    """A batch column of images: stacked when shapes agree, else a list (ragged)."""
    if len({a.shape for a in arrays}) == 1:
        return np.stack(arrays)
    return arrays
