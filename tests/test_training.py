"""patina train detect|inpaint|colorize: tiny real training runs write verified models that run in the pipeline."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from safetensors.torch import load_file

from patina.flows.cli import main
from patina.models.image import to_uint8
from patina.models.training import TrainConfig, train
from patina.models.training_tasks import TASKS, damage_sample
from tests.helpers import scene

TINY = {"steps": 2, "batch": 2, "crop": 32, "width": 4, "depth": 2, "checkpoint_every": 1, "eval_images": 2}
TINY["workers"] = 0  # batches built in the trainer's process (the resume test interrupts them there)


@pytest.fixture
def clean_images(tmp_path) -> Path:
    folder = tmp_path / "clean"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"clean-{i}.png"), to_uint8(scene(48, 56, seed=i))[..., ::-1])
    return folder


def test_damage_samples_are_reproducible_and_masked():
    clean = scene(64, 64, seed=3)
    first = damage_sample(clean, np.random.default_rng(11))
    second = damage_sample(clean, np.random.default_rng(11))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[1].any() and first[0].shape == clean.shape


PIPELINES = {  # task -> (stages run, decision every successful row of the trained model's stage records)
    "detect": (["assess", "detect_damage", "inpaint"], "damaged_fraction"),
    "inpaint": (["assess", "detect_damage", "inpaint"], "filled_pixels"),
    "colorize": (["assess", "colorize"], "mean_chroma"),
}
BASELINES = {"detect": {"learned", "classical"}, "inpaint": {"learned", "telea"},
             "colorize": {"learned", "gray", "flat_sepia", "truth"}}  # fmt: skip


def test_the_cli_offers_every_training_task():
    from patina.flows.train_command import TASK_HELP

    assert set(TASK_HELP) == set(TASKS) | {"fade"} and set(TASKS) == set(PIPELINES)  # fade: models/fade_network.py


@pytest.mark.parametrize("task", sorted(PIPELINES))
def test_two_step_training_writes_a_model_that_runs_in_the_pipeline(ray_local, clean_images, tmp_path, capsys, task):
    from patina.actors.pipeline import run_pipeline
    from patina.flows.config import load_config
    from patina.manifests.provenance import read_provenance
    from patina.manifests.readers import read_manifest
    from tests.conftest import make_collection

    out = tmp_path / "model"
    argv = ["train", task, "--data", str(clean_images), "--out", str(out), "--val", str(clean_images)]
    argv += [x for k, v in TINY.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    assert main(argv) == 0
    card = json.loads((out / "model-card.json").read_text())
    weights = (out / "model.safetensors").read_bytes()
    assert card["sha256"] == hashlib.sha256(weights).hexdigest()
    assert card["id"] == f"local/{TASKS[task].model_name}@{card['sha256'][:12]}" and card["stage"] == TASKS[task].stage
    assert set(card["metrics"]) == BASELINES[task]
    assert len({tuple(m) for m in card["metrics"].values()}) == 1  # every model scored on the same metrics
    assert card["id"] in (out / "model-card.md").read_text() and (out / "checkpoint.pt").exists()
    assert card["id"] in capsys.readouterr().out

    stages, decision = PIPELINES[task]
    stage = TASKS[task].stage
    config_file = tmp_path / "pipeline.toml"
    config_file.write_text(
        f'catalogues = ["model/catalogue.toml"]\nstages = {json.dumps(stages)}\n'
        f'[stage.{stage}]\nmodel = "{card["id"]}"\n'
        + ("params = { threshold = 0.3 }\n" if task == "detect" else "")
        # the synthetic sepia's tint is single-hue to assess@2 (colours kept): the collection says monochrome
        + ('[stage.assess]\nparams = { collection = "monochrome" }\n' if task == "colorize" else "")
    )
    config = load_config(config_file)  # the catalogue path is relative to the config file
    collection = make_collection(tmp_path / "c", count=2, bad=False)  # item/0 colour, item/1 sepia
    summary = run_pipeline(read_manifest(str(collection)), config.run_settings("run-t", str(tmp_path / "o")))
    assert summary.succeeded == 2
    rows = [r for r in read_provenance(str(tmp_path / "o")).to_pylist() if r["stage"] == stage]
    assert {(r["model_id"], r["model_sha256"]) for r in rows} == {(card["id"], card["sha256"])}
    applied = [r for r in rows if r["status"] == "ok"]
    assert applied and all(decision in json.loads(r["decisions"]) for r in applied)
    if task == "colorize":  # only the monochrome item
        assert [r["item_id"] for r in applied] == ["item/1"]


def test_a_run_killed_after_a_checkpoint_resumes_to_the_same_weights(clean_images, tmp_path, monkeypatch):
    import patina.models.training as training

    config = TrainConfig(**{**TINY, "steps": 4, "checkpoint_every": 2})
    train("detect", clean_images, tmp_path / "straight", None, config)
    batches = {"n": 0}
    real = training.make_batch

    def dies_at_step_three(*args):
        batches["n"] += 1
        if batches["n"] == 3:
            raise KeyboardInterrupt  # the process dies after the step-2 checkpoint
        return real(*args)

    monkeypatch.setattr(training, "make_batch", dies_at_step_three)
    with pytest.raises(KeyboardInterrupt):
        train("detect", clean_images, tmp_path / "resumed", None, config)
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    monkeypatch.setattr(training, "make_batch", real)
    train("detect", clean_images, tmp_path / "resumed", None, config)  # the same command again
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert a.keys() == b.keys() and all(np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-6) for k in a)


def test_training_without_images_names_the_folder(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "detect", "--data", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "no images" in capsys.readouterr().err


def test_fine_tuning_starts_from_the_shipped_model(clean_images, tmp_path, capsys):
    from patina.models.registry import entry
    from patina.models.weights import weights_path

    shipped = entry("patina/damage-unet@1").spec
    out = tmp_path / "tuned"
    argv = ["train", "detect", "--data", str(clean_images), "--out", str(out), "--init", shipped.id]
    argv += ["--steps", "2", "--batch", "2", "--crop", "32", "--workers", "0", "--lr", "1e-4"]
    assert main(argv) == 0
    card = json.loads((out / "model-card.json").read_text())
    assert card["init"] == {"model": shipped.id, "sha256": shipped.sha256}
    assert card["unet"]["width"] == 16 and card["unet"]["depth"] == 3  # the shipped network's shape, not the flags'
    start, tuned = load_file(str(weights_path(shipped))), load_file(str(out / "model.safetensors"))
    assert start.keys() == tuned.keys() and any(not np.array_equal(start[k], tuned[k]) for k in start)
    assert max(float((start[k] - tuned[k]).abs().max()) for k in start) < 0.01  # two small steps from it
    assert f"fine-tuned from `{shipped.id}`" in (out / "model-card.md").read_text()

    wrong = ["train", "detect", "--data", str(clean_images), "--out", str(tmp_path / "w"), "--init"]
    assert main([*wrong, "patina/colorize-unet@1"]) == 2
    assert "not a U-Net for detect_damage" in capsys.readouterr().err
