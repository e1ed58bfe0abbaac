"""What the service says about itself: JSON logs, request ids, Prometheus metrics."""
