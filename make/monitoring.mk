# The monitoring stack of the local loop (README.md, "Monitoring"): kube-prometheus-stack
# on the kind cluster, picking up the chart's ServiceMonitor, PrometheusRule and dashboard;
# and the alert rules' and dashboard's own tests (tests/monitoring).

GRAFANA_PORT ?= 3000
PROMETHEUS_PORT ?= 9090

.PHONY: monitoring
monitoring: venv ## Install pinned kube-prometheus-stack and Grafana Tempo on the kind cluster + the app's alerts and dashboard
	$(PY) -m tools.localmonitoring up --namespace "$(NAMESPACE)"

.PHONY: grafana
grafana: ## Port-forward Grafana (after make monitoring): http://127.0.0.1:3000 (GRAFANA_PORT), dashboard "Python service"
	$(KUBECTL) --namespace monitoring port-forward service/monitoring-grafana "$(GRAFANA_PORT):80"

.PHONY: prometheus
prometheus: ## Port-forward Prometheus (after make monitoring): http://127.0.0.1:9090 (PROMETHEUS_PORT): targets, alerts
	$(KUBECTL) --namespace monitoring port-forward service/monitoring-prometheus "$(PROMETHEUS_PORT):9090"

.PHONY: test-monitoring
test-monitoring: venv ## promtool tests of every alert; the dashboard and rules on a real Prometheus (~1 min)
	$(PY) -m pytest tests/monitoring -q
