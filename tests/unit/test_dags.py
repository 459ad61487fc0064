"""Every example DAG in dags/ parses the way the dag-processor parses it: no import error, no warning.

The examples are what users copy, so a deprecated import or a parse-time network call here would be
copied into every team's DAGs.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.mappedoperator import MappedOperator

from airflow_cognito_iam.operators.api import CognitoIamApiOperator

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
EXPECTED_DAG_IDS = {
    "cognito_iam_orders_daily",
    "cognito_iam_orders_pipeline",
    "cognito_iam_mapped_endpoints",
    "cognito_iam_async_export",
    "cognito_iam_identity_boto3",
    "cognito_iam_bearer_token",
    "cognito_iam_customer_details",
}
PUBLIC_MODULES = (
    "airflow.sdk",
    "airflow_cognito_iam.hooks.cognito_iam",
    "airflow_cognito_iam.operators.api",
    "airflow_cognito_iam.operators.fanout",
    "airflow_cognito_iam.sensors.api",
)


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    with warnings.catch_warnings():
        # Anything deprecated, anywhere in the import of a DAG file, fails the test below.
        warnings.simplefilter("always")
        return DagBag(dag_folder=DAGS, safe_mode=False)


def test_every_dag_file_imports_without_errors_or_warnings(dagbag: DagBag) -> None:
    assert DAG_FILES, "dags/ holds the examples"
    assert dagbag.import_errors == {}
    assert dagbag.captured_warnings == {}
    assert {Path(dag.fileloc).name for dag in dagbag.dags.values()} == {p.name for p in DAG_FILES}
    assert set(dagbag.dag_ids) == EXPECTED_DAG_IDS


def test_dag_files_raise_no_deprecation_warning_when_imported_directly() -> None:
    """DagBag records warnings per file; importing again with errors on catches module-level ones too."""
    import importlib.util

    for path in DAG_FILES:
        spec = importlib.util.spec_from_file_location(f"_example_{path.stem}", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            warnings.simplefilter("error", PendingDeprecationWarning)
            spec.loader.exec_module(module)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_examples_use_only_public_imports_and_are_documented(path: Path) -> None:
    tree = ast.parse(path.read_text())
    docstring = ast.get_docstring(tree)
    assert docstring, f"{path.name} starts with a docstring saying what it shows"
    assert len(docstring.splitlines()) >= 3, "explain what it shows and how to run it"
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            if root in ("airflow", "airflow_cognito_iam"):
                assert node.module in PUBLIC_MODULES, f"{path.name}: {node.module} is not public API"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] not in ("airflow", "airflow_cognito_iam"), alias.name


def test_examples_hold_no_secrets_and_read_settings_at_run_time() -> None:
    for path in DAG_FILES:
        text = path.read_text()
        for needle in ("password", "client_secret", "aws_secret_access_key", "AKIA"):
            assert needle.lower() not in text.lower(), f"{path.name} mentions {needle}"
        # Variable.get at module level runs on every parse of the file (every 30 s per file).
        tree = ast.parse(text)
        for stmt in tree.body:
            for node in ast.walk(stmt):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                    break
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr == "get"
                    and getattr(node.value, "id", "") == "Variable"
                ):
                    raise AssertionError(f"{path.name}: Variable.get at parse time; use a template")


def test_daily_dag_is_backfill_safe(dagbag: DagBag) -> None:
    dag = dagbag.dags["cognito_iam_orders_daily"]
    assert getattr(dag.timetable, "expression", None) == "0 0 * * *"  # "@daily"
    assert dag.max_active_runs is not None
    pull = dag.get_task("pull_orders")
    assert isinstance(pull, CognitoIamApiOperator)
    destination = str(pull.destination)
    # One key per logical date: a re-run or backfill of a day overwrites exactly that day's object.
    assert "dt={{ ds }}" in destination
    assert destination.startswith("s3://")
    assert (pull.retries or 0) >= 1
    assert [outlet.name for outlet in pull.outlets] == ["cognito_iam_orders"]
    assert set(dag.params) >= {"bucket", "limit"}


def test_mapped_dag_expands_over_endpoints(dagbag: DagBag) -> None:
    dag = dagbag.dags["cognito_iam_mapped_endpoints"]
    pulls = [t for t in dag.tasks if isinstance(t, MappedOperator)]
    assert len(pulls) == 1
    assert pulls[0].task_id == "pull"
    expand_input = pulls[0].expand_input.value
    assert isinstance(expand_input, dict)
    assert "endpoint" in expand_input
    assert pulls[0].downstream_task_ids, "a transform task reads the mapped results"


def test_customer_details_fans_out_over_an_upstream_xcom(dagbag: DagBag) -> None:
    from airflow_cognito_iam.operators.fanout import CognitoIamFanOutOperator

    details = dagbag.dags["cognito_iam_customer_details"].get_task("details")
    assert isinstance(details, CognitoIamFanOutOperator)
    assert details.upstream_task_ids == {"detail_requests"}, "requests= is the upstream task's XComArg"
    assert "dt={{ ds }}" in str(details.destination)


def test_async_export_waits_in_the_triggerer(dagbag: DagBag) -> None:
    dag = dagbag.dags["cognito_iam_async_export"]
    (export,) = dag.tasks
    assert isinstance(export, CognitoIamApiOperator)
    assert export.deferrable
    assert export.method == "POST"
    assert export.status_endpoint == "/jobs/{job_id}"


def test_bearer_dag_calls_with_the_id_token(dagbag: DagBag) -> None:
    dag = dagbag.dags["cognito_iam_bearer_token"]
    modes = {getattr(t, "auth", None) for t in dag.tasks}
    assert "id_token" in modes


def _required_in_the_trigger_form(schema: dict[str, Any]) -> bool:
    """The Airflow 3.3 Trigger/Backfill dialogs require a param whose type does not allow null."""
    kind = schema.get("type")
    return bool(kind) and (not isinstance(kind, list) or "null" not in kind)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAG_IDS))
def test_trigger_and_backfill_dialogs_accept_every_default_param(dagbag: DagBag, dag_id: str) -> None:
    """Pressing Trigger with the defaults must work: no "This field is required" on an empty default."""
    params = dagbag.dags[dag_id].params
    for name in params:
        param = params.get_param(name)
        value, schema = param.value, param.schema
        if _required_in_the_trigger_form(schema):
            assert value not in (None, ""), f"{dag_id}.{name}: required with an empty default"
        param.resolve(value)  # the default passes the param's own schema


def test_blank_bucket_param_falls_back_to_the_variable(dagbag: DagBag) -> None:
    for dag_id in (
        "cognito_iam_orders_daily",
        "cognito_iam_async_export",
        "cognito_iam_identity_boto3",
        "cognito_iam_customer_details",
    ):
        param = dagbag.dags[dag_id].params.get_param("bucket")
        assert param.value is None
        assert "null" in param.schema["type"]
        assert "cognito_iam_bucket" in param.description
