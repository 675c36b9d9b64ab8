"""The Prefect flow on a real Prefect API server (loopback) and a real local Ray."""

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from patina.flows.config import PipelineConfig
from patina.flows.restore import restore_collection
from patina.manifests.items import ManifestError
from patina.manifests.provenance import read_provenance
from tests.helpers import DEFAULT_STEPS


def test_flow_restores_a_collection_and_publishes_an_artifact(prefect_server, ray_local, collection, tmp_path):
    out = tmp_path / "out"
    state = restore_collection(str(collection), str(out), PipelineConfig(), return_state=True)
    assert state.is_completed()
    summary = state.result()
    assert (summary["status"], summary["succeeded"], summary["failed"]) == ("partial", 4, 3)
    assert {f["item_id"] for f in summary["failures"]} == {"missing", "corrupt", "tampered"}
    assert read_provenance(str(out)).num_rows == 7 * len(DEFAULT_STEPS)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
        assert run.state.is_completed() and run.parameters["manifest"] == str(collection)
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["patina-run"])))
    mine = [a for a in artifacts if a.flow_run_id == run.id]
    assert len(mine) == 1 and summary["run_id"] in mine[0].data and "tampered" in mine[0].data


def test_flow_fails_clearly_on_a_bad_manifest(prefect_server, tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("item_id,source_uri\na,a.jpg\na,b.jpg\n")
    with pytest.raises(ManifestError, match="duplicate item_id 'a'"):
        restore_collection(str(bad), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()  # nothing written


def test_flow_refuses_to_write_into_the_masters_folder(prefect_server, collection):
    from patina.flows.config import ConfigError

    before = sorted(p.name for p in collection.parent.iterdir())
    with pytest.raises(ConfigError, match="holds masters"):
        restore_collection(str(collection), str(collection.parent))
    assert sorted(p.name for p in collection.parent.iterdir()) == before
