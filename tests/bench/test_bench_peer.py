"""The peer (bench/peer_app.py) answers what the benchmark asks exactly as the service does,
so comparing their throughput compares two ways of serving the same JSON."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from bench.dataset import BENCH_OWNER, POPULAR_TAG, RARE_TAG
from bench.peer_app import create_app as create_peer
from bench.servers import BENCH_CALLERS, BenchCaller, Database, bench_auth_env
from service import create_app
from service.config import Settings

ITEMS = "/api/v1/items"


# Both act for the bench owner, as the benchmark's requests do (the peer reads the token's
# `sub` without checking it; the service checks it).
BENCH = {"Authorization": f"Bearer {BENCH_CALLERS[0].token()}"}


@pytest.fixture(scope="module")
def service(seeded: Database, tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    env = {"DATABASE_URL": seeded.url, "APP_ENV": "dev"}
    settings = Settings.from_env(env | bench_auth_env(tmp_path_factory.mktemp("peer-auth")))
    client = create_app(settings).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = BENCH["Authorization"]
    return client


@pytest.fixture(scope="module")
def peer(seeded: Database) -> Iterator[FlaskClient]:
    app = create_peer(seeded.url)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = BENCH["Authorization"]
    yield client
    with app.app_context():
        from bench.peer_app import db

        db.engine.dispose()


def both(
    service: FlaskClient, peer: FlaskClient, url: str, headers: dict[str, str] | None = None
) -> Any:
    ours, theirs = service.get(url, headers=headers), peer.get(url, headers=headers)
    assert (ours.status_code, theirs.status_code) == (200, 200), url
    assert ours.json == theirs.json, url
    return ours.json


@pytest.mark.parametrize(
    "url",
    [
        f"{ITEMS}/1",  # popular
        f"{ITEMS}/2",
        f"{ITEMS}/1002",  # rare
        f"{ITEMS}?limit=20&cursor=1234",
        f"{ITEMS}?cursor=3990",  # a short last page: next_cursor null
        f"{ITEMS}?tag={POPULAR_TAG}&limit=20&cursor=500",
        f"{ITEMS}?tag={RARE_TAG}",
        f"{ITEMS}?tag=tag-13&limit=5",
    ],
)
def test_the_same_json_for_every_read_the_benchmark_makes(
    service: FlaskClient, peer: FlaskClient, url: str
) -> None:
    body = both(service, peer, url)
    assert body  # not an empty answer that would compare equal by accident


@pytest.mark.parametrize("caller", BENCH_CALLERS[1:], ids=lambda c: c.owner)
def test_the_same_json_for_the_other_owner_and_the_admin(
    service: FlaskClient, peer: FlaskClient, caller: BenchCaller
) -> None:
    """The benchmark's other callers (issue 25: two owners and an admin) read the same: an
    item of owner-1's, a page of what each reaches, and its ?tag= pages."""
    headers = {"Authorization": f"Bearer {caller.token()}"}
    for url in (
        f"{ITEMS}/6",
        f"{ITEMS}?limit=20&cursor=1234",
        f"{ITEMS}?tag={caller.popular}&limit=20&cursor=500",
        f"{ITEMS}?tag={caller.rare}",
    ):
        body = both(service, peer, url, headers)
        assert body, url
    page = both(service, peer, f"{ITEMS}?limit=20&cursor=0", headers)
    owners = {item["owner"] for item in page["items"]}
    assert len(owners) > 1 if caller.admin else owners == {caller.owner}


def test_the_pages_hold_what_the_scenarios_expect(service: FlaskClient, peer: FlaskClient) -> None:
    rare = both(service, peer, f"{ITEMS}?tag={RARE_TAG}")
    assert len(rare["items"]) == 10 and rare["next_cursor"] is None
    popular = both(service, peer, f"{ITEMS}?tag={POPULAR_TAG}&limit=20&cursor=500")
    assert [item["id"] for item in popular["items"]] == list(range(501, 901, 20))
    assert all(POPULAR_TAG in item["tags"] for item in popular["items"])


def test_a_post_with_five_tags_answers_the_same(service: FlaskClient, peer: FlaskClient) -> None:
    tags = ["tag-21", "tag-33", "tag-45", "tag-52", "tag-64"]
    answers = []
    for name, client in (("peer-test-ours", service), ("peer-test-theirs", peer)):
        response = client.post(ITEMS, json={"name": name, "description": "d", "tags": tags[::-1]})
        assert response.status_code == 201, response.json
        assert response.headers["Location"].endswith(f"{ITEMS}/{response.json['id']}")
        answers.append(response.json)
        assert client.get(f"{ITEMS}/{response.json['id']}").json == response.json
    ours, theirs = answers
    assert set(ours) == set(theirs)
    assert (ours["tags"], theirs["tags"]) == (tags, tags)
    # The peer reads the service's write as the service does. Not the reverse: the peer,
    # like any writer outside the service once the contract step 0008 has run, writes
    # links without `items.tag_names` (docs/performance.md, issue 26).
    assert both(service, peer, f"{ITEMS}/{ours['id']}") == ours


def test_both_answer_only_the_callers_rows(service: FlaskClient, peer: FlaskClient) -> None:
    other = 6  # slot 5: owner-1's (bench/dataset.py)
    assert (
        service.get(f"{ITEMS}/{other}").status_code,
        peer.get(f"{ITEMS}/{other}").status_code,
    ) == (404, 404)
    page = both(service, peer, f"{ITEMS}?limit=20&cursor=0")
    assert {item["owner"] for item in page["items"]} == {BENCH_OWNER}


def test_the_peer_refuses_what_the_service_refuses(peer: FlaskClient) -> None:
    """Not the same error bodies (its users write their own), but no write either."""
    unknown = peer.post(ITEMS, json={"name": "peer-test-unknown", "tags": ["no-such-tag"]})
    assert unknown.status_code == 422
    assert peer.post(ITEMS, json={"name": "peer-test-dup"}).status_code == 201
    assert peer.post(ITEMS, json={"name": "peer-test-dup"}).status_code == 409
    assert peer.get(f"{ITEMS}?tag=no-such-tag").json == {"items": [], "next_cursor": None}
