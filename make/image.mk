# Container images: `make image` (production) and `make image-dev` (dev server + reloader).
# Everything below can be overridden from the environment, e.g. in CI:
#   DOCKER=/usr/bin/docker BASE_IMAGE=$(bash scripts/ci/base-image.sh) make image

DOCKER ?= docker
IMAGE ?= service
# The git revision, never `latest`: an image name says exactly which code it holds.
# Uncommitted changes to what the build reads add "-dirty", so such an image is never
# mistaken for the commit's.
IMAGE_INPUTS := Dockerfile .dockerignore requirements.lock alembic.ini service migrations
TAG ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unversioned)$(shell test -z "$$(git status --porcelain -- $(IMAGE_INPUTS) 2>/dev/null)" || echo -dirty)
BASE_IMAGE ?= python:3.12-slim-bookworm
# Handed to pip as a BuildKit secret (never a layer) when present: the host's trust store
# is what makes PyPI reachable behind a TLS-intercepting proxy.
CA_BUNDLE ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
# Empty: Docker's default build network. `host` uses the host's resolver and routes
# (some VPNs and proxies need it).
DOCKER_BUILD_NETWORK ?=
DOCKER_BUILD_ARGS ?=
IMAGE_VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
IMAGE_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
IMAGE_SOURCE ?= $(shell git remote get-url origin 2>/dev/null)

comma := ,
# $(1): Dockerfile target, $(2): name:tag
# BUILDX_NO_DEFAULT_ATTESTATIONS: buildx (Docker 23+) attaches a provenance attestation by
# default, which makes a one-platform image an index that `kind load` cannot import from
# Docker's containerd image store (kind issues 3795, 4066). Releases that want provenance
# ask for it explicitly (--provenance/--attest still work); older `docker build` ignores it.
define docker_build
	DOCKER_BUILDKIT=1 BUILDX_NO_DEFAULT_ATTESTATIONS=1 $(DOCKER) build \
		--target $(1) \
		--tag $(2) \
		$(if $(DOCKER_BUILD_NETWORK),--network $(DOCKER_BUILD_NETWORK)) \
		--build-arg BASE_IMAGE=$(BASE_IMAGE) \
		--build-arg VERSION=$(IMAGE_VERSION) \
		--build-arg REVISION=$(IMAGE_REVISION) \
		--build-arg SOURCE_URL=$(IMAGE_SOURCE) \
		$(if $(CA_BUNDLE),--secret id=ca$(comma)src=$(CA_BUNDLE)) \
		$(DOCKER_BUILD_ARGS) \
		.
	@echo "built $(2)"
endef

.PHONY: image
image: ## Build the production image IMAGE:TAG (git revision); takes DOCKER, BASE_IMAGE
	$(call docker_build,runtime,$(IMAGE):$(TAG))

.PHONY: image-dev
image-dev: ## Build the dev image IMAGE:TAG-dev (Flask dev server + reloader)
	$(call docker_build,dev,$(IMAGE):$(TAG)-dev)

.PHONY: bench-image
bench-image: venv ## Image size over base, cold and code-only build times, start to /readyz
	DOCKER=$(DOCKER) BASE_IMAGE=$(BASE_IMAGE) CA_BUNDLE=$(CA_BUNDLE) $(PY) -m bench.image
