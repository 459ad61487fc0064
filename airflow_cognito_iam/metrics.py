"""Sends the auth layer's ``cognito_iam.*`` metrics to Airflow's ``Stats`` (StatsD or OpenTelemetry)."""

from __future__ import annotations

from airflow_cognito_iam.auth import metrics


class AirflowStatsSink:
    """``auth.metrics`` sink backed by ``airflow.sdk.observability.stats.Stats``, as ``[metrics]`` configures it."""

    def incr(self, name: str, tags: dict[str, str]) -> None:
        from airflow.sdk.observability.stats import Stats

        Stats.incr(name, tags=tags or None)

    def timing(self, name: str, milliseconds: float, tags: dict[str, str]) -> None:
        from airflow.sdk.observability.stats import Stats

        Stats.timing(name, milliseconds, tags=tags or None)


def install() -> None:
    """Route the package's metrics to Airflow (idempotent; done when the hook module is imported)."""
    metrics.set_sink(AirflowStatsSink())
