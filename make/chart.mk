# The Helm chart charts/app: tools, lint, docs, policy scan and its tests.
# Helm 4 and Helm 3 come from scripts/ci/install-k8s-tools.sh (bin/helm, bin/helm3);
# override with CHART_HELM=/path/to/helm CHART_HELM3=/path/to/helm3.

CHART_DIR := charts/app
CHART_ENVS := dev staging prod
CHART_HELM ?= bin/helm
CHART_HELM3 ?= bin/helm3
CHART_NAMESPACE ?= app
# The chart renders only an image that exists: staging and prod require image.digest, dev
# a tag (a pipeline, skaffold or `make deploy` passes the real ones). These only let lint
# and template run locally.
CHART_TEST_DIGEST := sha256:5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e
CHART_TEST_TAG := 1.4.2
READMEGEN := .tools/npm/node_modules/.bin/readme-generator
CHECKOV := .tools/checkov-venv/bin/checkov
ENV ?=

chart_values = -f values/$(1).yaml $(if $(filter dev,$(1)),--set image.tag=$(CHART_TEST_TAG),--set image.digest=$(CHART_TEST_DIGEST))

.PHONY: chart-tools
chart-tools: ## Install helm 4, helm 3, kubectl, readme-generator and checkov into bin/ and .tools/
	bash scripts/ci/install-k8s-tools.sh

$(CHART_HELM) $(CHART_HELM3):
	bash scripts/ci/install-k8s-tools.sh helm

$(READMEGEN):
	bash scripts/ci/install-k8s-tools.sh readme-generator

$(CHECKOV): tools/checkov.lock
	bash scripts/ci/install-k8s-tools.sh checkov

.PHONY: chart-lint
chart-lint: $(CHART_HELM) $(CHART_HELM3) ## helm lint --strict every values/*.yaml with Helm 4 and Helm 3
	@for helm in $(CHART_HELM) $(CHART_HELM3); do \
		for env in $(CHART_ENVS); do \
			echo "== $$helm lint $$env"; \
			$$helm lint --strict $(CHART_DIR) -f values/$$env.yaml \
				$$([ $$env = dev ] && echo --set image.tag=$(CHART_TEST_TAG) \
					|| echo --set image.digest=$(CHART_TEST_DIGEST)); \
		done; \
	done

.PHONY: chart-template
chart-template: $(CHART_HELM) ## Print the objects values/$(ENV).yaml renders: make chart-template ENV=prod
	@case "$(ENV)" in dev|staging|prod) ;; *) echo "ENV must be one of: $(CHART_ENVS) (got '$(ENV)')" >&2; exit 2;; esac
	@$(CHART_HELM) template app $(CHART_DIR) --namespace $(CHART_NAMESPACE) $(call chart_values,$(ENV))

.PHONY: chart-docs
chart-docs: $(READMEGEN) ## Regenerate the values table in charts/app/README.md from values.yaml
	$(READMEGEN) --values $(CHART_DIR)/values.yaml --readme $(CHART_DIR)/README.md

.PHONY: chart-checkov
chart-checkov: $(CHART_HELM) $(CHECKOV) ## checkov's Kubernetes checks over the staging and prod renders (prod also on CloudNativePG)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	for env in staging prod; do \
		$(CHART_HELM) template app $(CHART_DIR) --namespace $(CHART_NAMESPACE) \
			-f values/$$env.yaml --set image.digest=$(CHART_TEST_DIGEST) > "$$tmp/$$env.yaml"; \
	done && \
	$(CHART_HELM) template app $(CHART_DIR) --namespace $(CHART_NAMESPACE) -f values/prod.yaml \
		-f values/cloudnative-pg.yaml --set image.digest=$(CHART_TEST_DIGEST) > "$$tmp/prod-cnpg.yaml" && \
	$(CHECKOV) --directory "$$tmp" --framework kubernetes --skip-download --compact --quiet

.PHONY: chart-test
chart-test: venv $(CHART_HELM) $(CHART_HELM3) ## The chart's tests: helm 3+4, schemas, objects, bad values, checkov, pods under Docker
	$(PY) -m pytest tests/chart $(PYTEST_ARGS)
