"""MLflow's experiment search: its filter grammar and order_by, read exactly, paged by keyset
over the order; what this store does not keep (experiment tags) is a 400 naming it."""

import pytest

from tests.support import publish_to_bus, sdk_spans
from tests.unit.conftest import embedded

SEARCH = "/api/2.0/mlflow/experiments/search"


@pytest.fixture
def named(tmp_path):
    with embedded(tmp_path) as api:
        for name in ("shop-eu", "shop-us", "support", "billing"):
            reply = api.client.post("/api/2.0/mlflow/experiments/create", json={"name": name})
            assert reply.status_code == 200
        publish_to_bus(api.bus, sdk_spans(2, seed=1), "ingested")  # no name: its id is its name
        api.drain()
        yield api


def _names(api, **body) -> list[str]:
    reply = api.client.post(SEARCH, json=body)
    assert reply.status_code == 200, reply.text
    return [e["name"] for e in reply.json()["experiments"]]


def test_filters_and_order_as_mlflow_writes_them(named):
    assert _names(named, filter="name LIKE 'shop%'", order_by=["name DESC"]) == [
        "shop-us",
        "shop-eu",
    ]
    assert _names(named, filter="name LIKE 'S%'") == [], "LIKE is case-sensitive"
    assert _names(named, filter="attribute.name ILIKE 'S%'", order_by=["name ASC"]) == [
        "shop-eu",
        "shop-us",
        "support",
    ]
    assert _names(named, filter="name = 'billing'") == ["billing"]
    assert _names(named, filter="name != 'billing' AND name LIKE '%u%'", order_by=["name"]) == [
        "shop-eu",
        "shop-us",
        "support",
    ]
    assert _names(named, filter="name = 'ingested'") == ["ingested"]
    everything = _names(named, order_by=["creation_time ASC"])
    assert set(everything) == {"shop-eu", "shop-us", "support", "billing", "ingested"}
    assert _names(named, filter="creation_time > 0", order_by=["name ASC"])[0] == "billing"
    assert _names(named, filter="creation_time < 0") == []


def test_pages_follow_the_order_and_a_token_its_query(named):
    seen, token = [], None
    while True:
        body = {"order_by": ["name DESC"], "max_results": 2}
        if token is not None:
            body["page_token"] = token
        page = named.client.post(SEARCH, json=body).json()
        seen += [e["name"] for e in page["experiments"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert seen == sorted(["shop-eu", "shop-us", "support", "billing", "ingested"], reverse=True)
    first = named.client.post(SEARCH, json={"order_by": ["name DESC"], "max_results": 1}).json()
    other = named.client.post(
        SEARCH, json={"order_by": ["name ASC"], "page_token": first["next_page_token"]}
    )
    assert other.status_code == 400 and "another query" in other.json()["message"]
    got = named.client.get(SEARCH, params={"filter": "name LIKE 'shop%'", "order_by": "name"})
    assert [e["name"] for e in got.json()["experiments"]] == ["shop-eu", "shop-us"]


@pytest.mark.parametrize(
    ("body", "mention"),
    [
        ({"filter": "garbage"}, "cannot read a condition"),
        ({"filter": "name = 'a' OR name = 'b'"}, "expected AND"),
        ({"filter": "tags.team = 'x'"}, "experiment tags are not kept"),
        ({"filter": "colour = 'red'"}, "unknown attribute 'colour'"),
        ({"filter": "creation_time > 'yesterday'"}, "compares with a number"),
        ({"filter": "name > 'a'"}, "takes =, !=, LIKE or ILIKE"),
        ({"order_by": ["colour DESC"]}, "order_by"),
        ({"order_by": ["name sideways"]}, "order_by"),
        ({"page_token": "not-a-token"}, "page_token"),
    ],
)
def test_a_search_it_cannot_answer_exactly_is_a_400_naming_why(named, body, mention):
    reply = named.client.post(SEARCH, json=body)
    assert reply.status_code == 400, reply.text
    assert mention in reply.json()["message"]
