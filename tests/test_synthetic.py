"""Synthetic damage: every degradation's mask is exactly what it destroyed, reproducibly from a seed."""

import numpy as np
import pytest

from patina.models import synthetic as syn
from tests.helpers import scene

LOCAL = {
    "dust": lambda im, rng: syn.dust(im, 30, rng),
    "scratches": lambda im, rng: syn.scratches(im, 3, rng, bright=False),
    "cracks": lambda im, rng: syn.cracks(im, rng),
    "torn corner": lambda im, rng: syn.torn_corner(im, rng),
}
GLOBAL = {
    "grayscale": lambda im, rng: syn.grayscale(im),
    "sepia": lambda im, rng: syn.sepia(im),
    "fade": lambda im, rng: syn.fade(im, 0.3),
    "yellowing": lambda im, rng: syn.color_cast(im),
    "grain": lambda im, rng: syn.grain(im, 0.03, rng),
    "blur": lambda im, rng: syn.blur(im, 1.5),
    "jpeg": lambda im, rng: syn.jpeg(im, 20),
    "halftone": lambda im, rng: syn.halftone(im),
}


@pytest.mark.parametrize("name", list(LOCAL))
def test_local_damage_changes_exactly_its_mask(name):
    image = scene(96, 128, seed=1)
    damaged = LOCAL[name](image, np.random.default_rng(5))
    assert damaged.mask.dtype == bool and damaged.mask.shape == image.shape[:2] and damaged.mask.any()
    changed = np.abs(damaged.image - image).max(axis=2) > 1e-6
    assert not (changed & ~damaged.mask).any()  # nothing outside the mask was touched
    assert changed[damaged.mask].mean() > 0.9  # and what it marks was painted over
    again = LOCAL[name](image, np.random.default_rng(5))
    np.testing.assert_array_equal(again.image, damaged.image)  # reproducible from the seed
    np.testing.assert_array_equal(again.mask, damaged.mask)


def test_crease_marks_its_fold_and_shades_beside_it():
    image = np.full((80, 120, 3), 0.4, np.float32)
    damaged = syn.crease(image, np.random.default_rng(2))
    assert damaged.mask.any() and np.all(damaged.image[damaged.mask].mean(axis=1) > 0.6)  # the bright fold
    beside = ~damaged.mask & (np.abs(damaged.image - image).max(axis=2) > 1e-6)
    assert beside.any() and np.all(damaged.image[beside] <= image[beside] + 1e-6)  # only its shadow


def test_stains_mask_their_dense_cores_only():
    image = np.full((80, 120, 3), 0.8, np.float32)
    damaged = syn.stains(image, np.random.default_rng(3))
    change = np.abs(damaged.image - image).max(axis=2)
    assert damaged.mask.any() and change[damaged.mask].min() > change[~damaged.mask].mean()


@pytest.mark.parametrize("name", list(GLOBAL))
def test_global_changes_destroy_no_pixel(name):
    image = scene(64, 64, seed=2)
    damaged = GLOBAL[name](image, np.random.default_rng(0))
    assert damaged.image.shape == image.shape and damaged.image.dtype == np.float32
    assert not damaged.mask.any() and not np.allclose(damaged.image, image)
