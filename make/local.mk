# The local Kubernetes loop: pinned tools, a kind cluster with ingress-nginx and local TLS,
# `skaffold dev` hot reload, and `helm upgrade --install` per environment.
# Guide: the "Local Kubernetes" section of README.md. Tools resolve from $KIND/$KUBECTL/$HELM/$SKAFFOLD, then
# bin/ (put first on PATH by the Makefile), then PATH; e.g. `make dev SKAFFOLD=/opt/skaffold`.

ENV ?=
NAMESPACE ?= app
DEPLOY_IMAGE ?=
LOCAL_PORT ?= 8080
KUBECTL ?= kubectl

.PHONY: tools
tools: venv ## Install pinned kind, skaffold, helm, kubectl into bin/ (checksums verified)
	$(PY) -m tools.install_tools

.PHONY: doctor
doctor: venv ## Check Docker, tool versions, ports 80/443, inotify, kube context; print fixes
	$(PY) -m tools.doctor

.PHONY: cluster
cluster: venv ## Create the kind cluster app-local with ingress-nginx and local TLS (idempotent)
	$(PY) -m tools.localcluster up

# Built from source (our CI machines, or any machine without a container registry): kind,
# skaffold and a kind node image from the Go module proxy and the local Debian base, each
# at the version local/from-source.toml pins, cached (README, "Local Kubernetes").
.PHONY: from-source
from-source: venv ## Build (or reuse) kind, skaffold and a kind node image from source: Go module proxy + local Debian base, no registry
	DOCKER=$(DOCKER) $(PY) -m tools.from_source all

.PHONY: cluster-from-source
cluster-from-source: from-source ## `make cluster` on the node image built from source; Traefik serves the ingress (IngressClass nginx)
	DOCKER=$(DOCKER) CLUSTER_FROM_SOURCE=1 $(PY) -m tools.localcluster up

.PHONY: cluster-delete
cluster-delete: venv ## Delete the kind cluster app-local (keeps the local CA in .local/tls)
	$(PY) -m tools.localcluster down

.PHONY: local-tls
local-tls: venv ## Create or reuse the local CA and certificate for app.localdev.me in .local/tls
	$(PY) -m tools.localca --host app.localdev.me --out .local/tls

.PHONY: dev
# skaffold builds with the docker CLI and `kind load`s the image: no default provenance
# attestation, as in `make image` (make/image.mk says why).
dev: export BUILDX_NO_DEFAULT_ATTESTATIONS = 1
dev: venv ## skaffold dev on the kind cluster: dev image, hot reload of service/**/*.py
	$(PY) -m tools.deploy dev

.PHONY: deploy
deploy: venv ## helm upgrade --install, waiting for the migration Job, rolled back on failure: make deploy ENV=dev|staging|prod (staging/prod: DEPLOY_CONTEXT_<ENV>)
	$(PY) -m tools.deploy deploy --env "$(ENV)" --namespace "$(NAMESPACE)" --image "$(DEPLOY_IMAGE)"

.PHONY: port-forward
port-forward: ## Forward http://127.0.0.1:$(LOCAL_PORT) to Service app in $(NAMESPACE)
	$(KUBECTL) --namespace "$(NAMESPACE)" port-forward service/app "$(LOCAL_PORT):80"
