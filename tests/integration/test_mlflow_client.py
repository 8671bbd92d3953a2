"""MLflow's own client (the pinned ``mlflow-tracing``) against ``up``: what it calls is served
in MLflow's wire format, so its code paths run as they do against an MLflow server."""

from collections.abc import Iterator

import mlflow
import pytest

from tests.support import Running, service_env, start_up

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_up(tmp_path_factory.mktemp("mlflow") / "data", service_env())
    try:
        mlflow.set_tracking_uri(running.api_url)  # no other module of the suite uses MLflow
        yield running
    finally:
        running.stop()


def test_set_experiment_creates_a_name_once_and_then_finds_it(tracking):
    created = mlflow.set_experiment("checkout-agent")
    found = mlflow.set_experiment("checkout-agent")  # get-by-name, not a second create
    assert (found.experiment_id, found.name) == (created.experiment_id, "checkout-agent")
    assert found.lifecycle_stage == "active"
    by_id = mlflow.set_experiment(experiment_id=created.experiment_id)
    assert by_id.name == "checkout-agent"
