"""The one place that makes torchvision importable where its compiled operators are missing.

On a CPU-only PyTorch install the only torchvision wheel matching ``torch==2.13.0`` is a CUDA
build whose C extension does not load; ``import torchvision`` then fails with
``operator torchvision::nms does not exist`` (its fake-tensor registrations for ``nms`` and
``qnms`` are not guarded by ``torchvision.extension._has_ops()`` like the others). spandrel
imports torchvision at import time (LaMa and RestoreFormer use ``transforms.functional``).

:func:`import_torchvision` imports torchvision normally; only when that exact failure happens
does it define the two operator schemas itself (without implementations: ``torchvision.ops``
still reports its missing extension when called) and import again. On a normal install it changes nothing.
:func:`import_spandrel` goes through it, so every caller gets the same behaviour.
"""

from __future__ import annotations

import logging
import sys
from types import ModuleType

import torch

log = logging.getLogger(__name__)

_MISSING_OPS = "torchvision::nms does not exist"
_library: torch.library.Library | None = None  # kept alive: dropping it would unregister the ops


def _define_missing_ops() -> None:
    global _library
    if _library is not None:
        return
    _library = torch.library.Library("torchvision", "FRAGMENT")
    _library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


def _forget_partial_import() -> None:
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]


def import_torchvision() -> ModuleType:
    """``import torchvision``, defining its missing operators first when its C extension is absent."""
    try:
        import torchvision
    except RuntimeError as exc:
        if _MISSING_OPS not in str(exc):
            raise
        log.info("torchvision's compiled operators are missing (CPU torch); using patina's definitions")
        _forget_partial_import()
        _define_missing_ops()
        import torchvision
    return torchvision


def import_spandrel() -> ModuleType:
    """``import spandrel`` (and spandrel-extra-arches' architectures when installed) via :func:`import_torchvision`."""
    import_torchvision()
    import spandrel

    try:
        import spandrel_extra_arches
    except ImportError:
        log.debug("spandrel-extra-arches is not installed; its architectures are unavailable")
    else:
        spandrel_extra_arches.install(ignore_duplicates=True)
    return spandrel
