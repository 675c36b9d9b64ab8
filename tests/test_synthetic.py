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


@pytest.mark.parametrize("bright", [True, False])
def test_crease_masks_its_fold_and_the_edge_it_shades(bright):
    image = np.full((80, 120, 3), 0.4, np.float32)
    damaged = syn.crease(image, np.random.default_rng(2), bright=bright)
    fold = (damaged.image.mean(axis=2) > 0.6) if bright else (damaged.image.mean(axis=2) < 0.2)
    assert fold.any() and damaged.mask[fold].all()
    edge = damaged.mask & ~fold
    change = damaged.image - image
    assert edge.any() and (np.all(change[edge] < 0) if bright else np.all(change[edge] > 0))  # shadow or light edge
    assert np.abs(change[~damaged.mask]).max() <= syn.VISIBLE  # nothing visible is left outside the mask


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


def test_writing_on_the_print_is_content_never_in_the_mask():
    image = scene(96, 160, seed=2)
    first = syn.inscription(image, np.random.default_rng(3), lines=3)
    again = syn.inscription(image, np.random.default_rng(3), lines=3)
    np.testing.assert_array_equal(first.image, again.image)
    assert not first.mask.any() and first.image.dtype == np.float32
    assert (np.abs(first.image - image).max(axis=2) > 0.1).mean() > 0.005  # ink was laid down


def test_detector_samples_carry_writing_and_some_no_damage_at_all():
    from patina.models.training_tasks import damage_sample

    clean = scene(64, 64, seed=3)
    samples = [damage_sample(clean, np.random.default_rng(seed)) for seed in range(40)]
    assert any(not mask.any() for _, mask in samples) and sum(mask.any() for _, mask in samples) > 25
    inscribed, plain = damage_sample(clean, np.random.default_rng(0), inscribed=1.0, undamaged=1.0)
    assert not plain.any() and np.abs(inscribed - clean).max() > 0.1
