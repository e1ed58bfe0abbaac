"""What a platform team running the chart under Argo CD or Flux on a managed cluster
needs: future Kubernetes minors, honest image names and version labels, Bitnami-named
extension knobs, sync ordering, a migration Job that recovers, configurable NetworkPolicy
peers, Gateway API. Rendered with Helm 4 and Helm 3."""

from __future__ import annotations

import pytest

from tests.chart.chartlib import (
    TEST_DIGEST,
    TEST_TAG,
    Obj,
    Render,
    helm_binary,
    pod_specs,
    render,
    run_helm,
    template_args,
)

pytestmark = pytest.mark.helm

HELM_MAJORS = (4, 3)


@pytest.fixture(params=HELM_MAJORS, ids=lambda m: f"helm{m}")
def helm(request: pytest.FixtureRequest) -> str:
    return helm_binary(int(request.param))


def version_labels(rendered: Render) -> dict[str, str | None]:
    """app.kubernetes.io/version of every pod the release creates, by pod."""
    return {
        where: meta["labels"].get("app.kubernetes.io/version")
        for where, meta, _ in pod_specs(rendered)
        if meta["labels"].get("app.kubernetes.io/name") == "app"
    }


# -- Kubernetes versions ------------------------------------------------------------------


@pytest.mark.parametrize("kube_version", ["1.38.0", "1.45.2", "1.40.1-eks-1234567"])
def test_a_future_kubernetes_minor_still_renders(helm: str, kube_version: str) -> None:
    """A managed cluster upgrades itself: an unchanged release must keep syncing."""
    result = run_helm(helm, *template_args("prod"), "--kube-version", kube_version)
    assert result.returncode == 0, result.stderr


def test_a_kubernetes_older_than_the_lower_bound_is_refused(helm: str) -> None:
    result = run_helm(helm, *template_args("prod"), "--kube-version", "1.29.9")
    assert result.returncode != 0
    assert "kubeVersion" in result.stderr or "Kubernetes version" in result.stderr


# -- images and versions ------------------------------------------------------------------


def test_no_image_is_guessed_from_app_version(helm: str) -> None:
    result = run_helm(helm, *template_args(None, ["existingSecret=db"]))
    assert result.returncode != 0
    assert "image.digest or image.tag is required" in result.stderr


def test_pods_are_labelled_with_the_tag_they_run(helm: str) -> None:
    rendered = render(helm, "dev")
    labels = version_labels(rendered)
    assert len(labels) >= 3, labels  # server, migration, helm test
    assert set(labels.values()) == {TEST_TAG}


def test_a_release_passing_tag_and_digest_pulls_the_digest_and_labels_the_tag(helm: str) -> None:
    rendered = render(helm, "prod", ["image.tag=2.0.1", "image.repository=reg.example/service"])
    for where, _, spec in pod_specs(rendered):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            if "service" in container["image"]:
                assert container["image"] == f"reg.example/service:2.0.1@{TEST_DIGEST}", where
    assert set(version_labels(rendered).values()) == {"2.0.1"}


def test_a_bare_digest_carries_no_invented_version(helm: str) -> None:
    """Without a tag the label comes from image.version, or is left off: never appVersion."""
    rendered = render(helm, "prod")
    assert set(version_labels(rendered).values()) == {None}
    for obj in rendered.objects:
        assert "app.kubernetes.io/version" not in obj["metadata"].get("labels", {}), obj["kind"]
    rendered = render(helm, "prod", ["image.version=2.0.1"])
    assert set(version_labels(rendered).values()) == {"2.0.1"}


def test_staging_and_prod_do_not_pull_a_digest_again(helm: str) -> None:
    for env in ("staging", "prod"):
        for where, _, spec in pod_specs(render(helm, env)):
            for container in [*spec.get("initContainers", []), *spec["containers"]]:
                if "@sha256:" in container["image"]:
                    assert container["imagePullPolicy"] == "IfNotPresent", f"{env} {where}"


def app_pod_spec(rendered: Render) -> Obj:
    spec: Obj = rendered.deployment()["spec"]["template"]["spec"]
    return spec
