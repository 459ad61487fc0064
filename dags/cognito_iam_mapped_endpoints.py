"""Mapped pull: the same signed call over several endpoints in parallel, then one transform.

``CognitoIamApiOperator.partial(...).expand(endpoint=[...])`` creates one task instance per
endpoint at run time (dynamic task mapping). Each instance signs its own request with the shared,
cached credentials of the ``cognito_iam_default`` connection (a worker signs in once, not once per
instance) and returns the JSON body to XCom. ``summarise`` then receives all the bodies, in the
order of the endpoints, and reduces them to a small report.

XCom is for small results: each body must stay under the operator's ``max_xcom_bytes`` (1 MiB by
default). For bigger payloads give the mapped operator a ``destination`` instead (see
cognito_iam_orders_daily).

Settings: the endpoints are the ``endpoints`` param (a list of paths on the connection's API);
the records are those of the logical date (the day it ran when triggered without one). Triggered manually (no schedule).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_cognito_iam.operators.api import CognitoIamApiOperator

with DAG(
    dag_id="cognito_iam_mapped_endpoints",
    description="Dynamic task mapping over API endpoints into XCom, then a transform",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "endpoints": Param(["/whoami", "/orders"], type="array", description="Paths to call, one task each"),
    },
    default_args={"retries": 2},
    tags=["cognito_iam", "example"],
    doc_md=__doc__,
) as dag:

    @task
    def endpoints(params: dict[str, Any]) -> list[str]:
        """The endpoints to call, from the run's params (so a trigger can change them)."""
        return [str(path) for path in params["endpoints"]]

    paths = endpoints()
    pulled = CognitoIamApiOperator.partial(
        task_id="pull",
        cognito_iam_conn_id="cognito_iam_default",
        query={"date": "{{ (dag_run.logical_date or dag_run.run_after) | ds }}", "limit": 20},
    ).expand(endpoint=paths)

    @task
    def summarise(paths: list[str], bodies: list[Any]) -> dict[str, Any]:
        """One entry per endpoint: how many records (or which keys) it returned."""
        report: dict[str, Any] = {}
        # Mapped results come back in map-index order, which is the order of the paths.
        for path, body in zip(paths, bodies, strict=True):
            if isinstance(body, dict) and isinstance(body.get("records"), list):
                report[path] = {"records": len(body["records"]), "more": bool(body.get("next_token"))}
            elif isinstance(body, dict):
                report[path] = {"keys": sorted(body)}
            else:
                report[path] = {"type": type(body).__name__}
        return report

    summarise(paths, pulled.output)
