"""`make promote`'s edit of a values file: only image.repository and image.digest change,
comments and every other key stay, and bad records are refused before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tools.release_promote import promote, set_image
from tools.release_registry import ReleaseError

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = "registry.example.com/team/service"
DIGEST = "sha256:" + "c0" * 32


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_real_values_files_gain_exactly_the_image(env: str) -> None:
    text = (ROOT / "values" / f"{env}.yaml").read_text()
    updated = set_image(text, repository=REPOSITORY, digest=DIGEST)
    before, after = yaml.safe_load(text), yaml.safe_load(updated)
    assert after["image"] == {**before["image"], "repository": REPOSITORY, "digest": DIGEST}
    assert {k: v for k, v in after.items() if k != "image"} == {
        k: v for k, v in before.items() if k != "image"
    }
    # Every line of the original is still there, in order: comments included.
    kept = [line for line in updated.splitlines() if line in text.splitlines()]
    assert kept == text.splitlines()


def test_existing_keys_are_replaced_in_place_with_their_comments() -> None:
    text = (
        "# top\n"
        "image:\n"
        "  repository: old/service  # where the pipeline pushes\n"
        "  # pinned\n"
        "  digest: sha256:" + "0" * 64 + "\n"
        "  pullPolicy: Always\n"
        "\n"
        "other:\n"
        "  digest: untouched\n"
    )
    updated = set_image(text, repository=REPOSITORY, digest=DIGEST)
    assert updated == (
        "# top\n"
        "image:\n"
        f"  repository: {REPOSITORY}  # where the pipeline pushes\n"
        "  # pinned\n"
        f"  digest: {DIGEST}\n"
        "  pullPolicy: Always\n"
        "\n"
        "other:\n"
        "  digest: untouched\n"
    )


def test_the_version_is_written_quoted_for_the_pods_label() -> None:
    text = "image:\n  pullPolicy: Always\n"
    once = set_image(text, repository=REPOSITORY, digest=DIGEST, version="1.10.0")
    assert yaml.safe_load(once)["image"]["version"] == "1.10.0"
    twice = set_image(once, repository=REPOSITORY, digest=DIGEST, version="1.11.0")
    assert [line for line in twice.splitlines() if line not in once.splitlines()] == [
        '  version: "1.11.0"'
    ]


def test_a_file_without_an_image_block_gets_one() -> None:
    updated = set_image("replicaCount: 2\n", repository=REPOSITORY, digest=DIGEST)
    assert yaml.safe_load(updated) == {
        "replicaCount": 2,
        "image": {"repository": REPOSITORY, "digest": DIGEST},
    }


def test_a_flow_style_image_is_refused() -> None:
    with pytest.raises(ReleaseError, match="block mapping"):
        set_image("image: {pullPolicy: Always}\n", repository=REPOSITORY, digest=DIGEST)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (None, "does not exist"),
        ("not json", "is not a release record"),
        ({"version": "1.0.0"}, 'has no "image"'),
        ({"version": "1.0.0", "image": f"{REPOSITORY}:1.0.0"}, "is not <repository>@sha256"),
        ({"image": f"{REPOSITORY}@{DIGEST}"}, '"version" must be the released version'),
        ({"version": "1.0.0 beta", "image": f"{REPOSITORY}@{DIGEST}"}, '"version" must be'),
    ],
)
def test_bad_release_records_are_refused_and_nothing_is_written(
    tmp_path: Path, record: object, expected: str
) -> None:
    values = tmp_path / "values"
    values.mkdir()
    original = (ROOT / "values" / "staging.yaml").read_text()
    (values / "staging.yaml").write_text(original)
    release = tmp_path / "release.json"
    if record is not None:
        release.write_text(record if isinstance(record, str) else json.dumps(record))
    with pytest.raises(ReleaseError, match=expected):
        promote(env="staging", release=str(release), values_dir=values)
    assert (values / "staging.yaml").read_text() == original


@pytest.mark.parametrize(
    ("env", "expected"), [("dev", "cannot be promoted"), ("", "ENV is required")]
)
def test_only_staging_and_prod_are_promoted(tmp_path: Path, env: str, expected: str) -> None:
    with pytest.raises(ReleaseError, match=expected):
        promote(env=env, release=str(tmp_path / "r.json"), values_dir=tmp_path)
