# Releases (docs/release.md): `make release` pushes an image and a chart to REGISTRY and
# records them by digest; `make promote` writes that digest into values/<env>.yaml.
#   make release REGISTRY=127.0.0.1:5000/team VERSION=1.2.0 DOCKER=/usr/bin/docker BASE_IMAGE=...
#   make promote ENV=staging RELEASE=dist/release-1.2.0.json
# DOCKER and BASE_IMAGE are make/image.mk's: the release image is built exactly as
# `make image` builds it.

REGISTRY ?=
VERSION ?=
# The org.opencontainers.image.source label; empty: the git remote `origin`.
SOURCE ?=
SKOPEO ?= skopeo
# bin/helm (Helm 4) comes first on PATH (Makefile); Helm 3.8+ pushes OCI charts too.
HELM ?= helm
RELEASE ?=
# cyclonedx-py in a venv of its own (tools/sbom.lock): its cyclonedx-python-lib is newer
# than the one checkov allows, so it cannot share a lock with the dev tools.
SBOM_VENV ?= .tools/sbom-venv

$(SBOM_VENV)/.installed: tools/sbom.lock
	$(PYTHON) -m venv --clear $(SBOM_VENV)
	$(SBOM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		--require-hashes --no-deps -r tools/sbom.lock
	@cp tools/sbom.lock $@

.PHONY: sbom-tool
sbom-tool: $(SBOM_VENV)/.installed ## Install cyclonedx-py (SBOMs) into .tools/sbom-venv from tools/sbom.lock

# The recipe never names $(MAKE): make would then run it even under `make -n`, and a dry
# run must not push anything. tools/release.py runs `make image` itself.
.PHONY: release
release: $(SBOM_VENV)/.installed ## Push image + chart VERSION to REGISTRY, SBOM, dist/release-VERSION.json
	DOCKER=$(DOCKER) BASE_IMAGE=$(BASE_IMAGE) CA_BUNDLE=$(CA_BUNDLE) \
		$(PYTHON) -m tools.release release --registry '$(REGISTRY)' --version '$(VERSION)' \
		--source '$(SOURCE)' --skopeo '$(SKOPEO)' --docker '$(DOCKER)' \
		--helm '$(HELM)' --cyclonedx '$(SBOM_VENV)/bin/cyclonedx-py'

.PHONY: promote
promote: ## Write RELEASE's image repository + digest into values/ENV.yaml (staging|prod)
	$(PYTHON) -m tools.release promote --env '$(ENV)' --release '$(RELEASE)'
