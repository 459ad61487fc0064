"""Pure pieces of deferrable mode: the job check, dotted paths, header refusal, error translation."""

from __future__ import annotations

import json

import aiohttp
import pytest
import requests

from airflow_cognito_iam.auth.async_transport import _as_requests_error
from airflow_cognito_iam.auth.retry import is_permanent_request_error, is_transient_api, is_transient_api_before_send
from airflow_cognito_iam.checks import JobFailedError, job_status
from airflow_cognito_iam.triggers.api import dotted_path, refuse_secret_headers


def response(body: object, status: int = 200) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body).encode()
    return r


def test_job_status_done_pending_failed() -> None:
    done = job_status(response({"status": "DONE", "result_path": "/r"}))
    assert done.is_done
    assert done.xcom_value == "/r"
    assert not job_status(response({"status": "pending"})).is_done
    with pytest.raises(JobFailedError, match="boom"):
        job_status(response({"status": "failed", "error": "boom"}))


def test_job_status_fields_are_configurable() -> None:
    value = job_status(
        response({"state": "SUCCEEDED", "url": "/x"}), status_field="state", done=["succeeded"], result_field="url"
    )
    assert value.is_done
    assert value.xcom_value == "/x"
    whole = job_status(response({"status": "done", "n": 1}), result_field=None)
    assert whole.xcom_value == {"status": "done", "n": 1}


def module_level_check(r: requests.Response) -> bool:
    return True


def test_dotted_path_accepts_module_functions_and_refuses_the_rest() -> None:
    assert dotted_path(job_status, "check") == "airflow_cognito_iam.checks.job_status"
    assert dotted_path(module_level_check, "check") == f"{__name__}.module_level_check"
    with pytest.raises(ValueError, match="cannot run in the triggerer"):
        dotted_path(lambda r: True, "check")

    def nested(r: requests.Response) -> bool:
        return True

    with pytest.raises(ValueError, match="cannot run in the triggerer"):
        dotted_path(nested, "check")
    with pytest.raises(ValueError, match="does not import"):
        dotted_path("airflow_cognito_iam.checks.nope", "check")


def test_credential_headers_are_refused_by_name_only() -> None:
    refuse_secret_headers({"Accept": "application/json", "X-Request-Id": "1"})
    for name in ("Authorization", "x-api-key", "Cookie", "X-Session-Token"):
        with pytest.raises(ValueError, match="stored in clear") as info:
            refuse_secret_headers({name: "s3cr3t-value"})
        assert "s3cr3t-value" not in str(info.value)


def test_aiohttp_errors_get_the_sync_classification() -> None:
    ssl = _as_requests_error(
        aiohttp.ClientSSLError(
            aiohttp.client_reqrep.ConnectionKey("h", 443, True, True, None, None, None), OSError("cert")
        )
    )
    assert is_permanent_request_error(ssl)
    reset = _as_requests_error(aiohttp.ServerDisconnectedError())
    assert is_transient_api(reset)
    assert not is_transient_api_before_send(reset)  # a POST may have landed
    refused = _as_requests_error(
        aiohttp.ClientConnectorError(
            aiohttp.client_reqrep.ConnectionKey("h", 443, True, True, None, None, None), OSError(111, "refused")
        )
    )
    assert is_transient_api(refused)
    assert is_transient_api_before_send(refused)  # never connected: safe even for a POST
    timeout = _as_requests_error(aiohttp.ServerTimeoutError())
    assert is_transient_api(timeout)
