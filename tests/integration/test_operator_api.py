"""CognitoIamApiOperator against the devstack over real HTTP: pagination, XCom, S3, faults, pinning.

Each test calls ``op.execute(context)`` as the task runner would, with connections in AIRFLOW_CONN_*
(set by the ``cognito_iam_conn`` fixture), and checks what an observer sees: the XCom value, the
object in S3, the API's request counters.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from airflow.sdk import DAG, Asset, AssetAlias
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_cognito_iam.devstack import DevStack
from airflow_cognito_iam.devstack.api_server import orders_for
from airflow_cognito_iam.operators.api import CognitoIamApiOperator, CognitoIamRetryableError, XComTooLargeError

pytestmark = pytest.mark.integration

DATE = "2024-01-02"
PAGE = 40  # orders_for() gives 101-139 records a day: 3-4 pages


def next_page(response: requests.Response) -> dict[str, Any] | None:
    """The pagination users write for /orders."""
    token = response.json()["next_token"]
    return {"query": {"next_token": token}} if token else None


def records(response: requests.Response) -> list[dict[str, Any]]:
    return list(response.json()["records"])


def orders_op(task_id: str = "pull_orders", **kwargs: Any) -> CognitoIamApiOperator:
    args: dict[str, Any] = {"endpoint": "/orders", "query": {"date": DATE, "limit": PAGE}, "pagination": next_page}
    args.update(kwargs)
    return CognitoIamApiOperator(task_id=task_id, **args)


def s3_lines(stack: DevStack, key: str) -> list[Any]:
    body = stack.s3_client().get_object(Bucket=stack.bucket, Key=key)["Body"].read()
    return [json.loads(line) for line in body.splitlines()]


def s3_keys(stack: DevStack, prefix: str) -> list[str]:
    listing = stack.s3_client().list_objects_v2(Bucket=stack.bucket, Prefix=prefix)
    return [obj["Key"] for obj in listing.get("Contents", [])]


def in_progress_uploads(stack: DevStack) -> list[Any]:
    return list(stack.s3_client().list_multipart_uploads(Bucket=stack.bucket).get("Uploads", []))


def api_requests(stack: DevStack, route: str) -> dict[str, int]:
    routes: dict[str, dict[str, int]] = stack.stats()["api"]["routes"]
    return {str(status): count for status, count in routes.get(route, {}).items()}


def expected_orders() -> list[dict[str, Any]]:
    return orders_for(DATE)


# --- a TCP proxy that breaks a response body mid-way -----------------------------------------------


class CuttingProxy:
    """Forwards 127.0.0.1:port to the API; when armed, resets the connection mid-response.

    The devstack's own ``reset`` fault drops a request before any response; this one lets the status
    line and part of the body through, then sends a TCP RST — the failure a page retry must handle.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.cuts = 0
        self._lock = threading.Lock()
        self._remaining: int | None = None
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, nbytes: int) -> None:
        """Reset the connection carrying the response bytes after the next ``nbytes`` (one shot)."""
        with self._lock:
            self._remaining = nbytes

    def close(self) -> None:
        self._stopped.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        try:
            while data := src.recv(65536):
                if downstream:
                    with self._lock:
                        cut = self._remaining is not None and len(data) >= self._remaining
                        if cut:
                            data, self._remaining = data[: self._remaining], None
                            self.cuts += 1
                        elif self._remaining is not None:
                            self._remaining -= len(data)
                    dst.sendall(data)
                    if cut:
                        for sock in (src, dst):
                            # shutdown() wakes the other pump's recv(); close() alone would not.
                            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                            with contextlib.suppress(OSError):
                                sock.shutdown(socket.SHUT_RDWR)
                            sock.close()
                        return
                else:
                    dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def proxy(cognito_iam_conn: DevStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[CuttingProxy]:
    """A ``cognito_iam_proxied`` connection whose API host is the cutting proxy."""
    upstream_port = int(cognito_iam_conn.api_url.rsplit(":", 1)[1])
    cutting = CuttingProxy(upstream_port)
    conn = cognito_iam_conn.conn_dict(host=f"http://127.0.0.1:{cutting.port}")
    monkeypatch.setenv("AIRFLOW_CONN_COGNITO_IAM_PROXIED", json.dumps(conn))
    yield cutting
    cutting.close()


# --- templating ----------------------------------------------------------------------------------


def test_templated_query_and_destination_use_the_logical_date(cognito_iam_conn: DevStack) -> None:
    with DAG("orders_daily", schedule="@daily", start_date=dt.datetime(2024, 1, 1), params={"limit": 1000}) as dag:
        op = CognitoIamApiOperator(
            task_id="pull",
            endpoint="/orders",
            query={"date": "{{ ds }}", "limit": "{{ params.limit }}"},
            destination=f"s3://{cognito_iam_conn.bucket}/templated/dt={{{{ ds }}}}/orders.json",
        )
    logical_date = dt.datetime(2024, 2, 29, tzinfo=dt.UTC)
    context: Any = {"ds": "2024-02-29", "logical_date": logical_date, "params": dag.params.validate(), "dag": dag}
    op.render_template_fields(context)

    result = op.execute(context)

    assert result["uri"] == f"s3://{cognito_iam_conn.bucket}/templated/dt=2024-02-29/orders.json"
    (body,) = s3_lines(cognito_iam_conn, "templated/dt=2024-02-29/orders.json")
    assert body["records"] == orders_for("2024-02-29")
    assert {r["date"] for r in body["records"]} == {"2024-02-29"}


# --- XCom ----------------------------------------------------------------------------------------


def test_single_response_to_xcom_is_the_decoded_json(cognito_iam_conn: DevStack) -> None:
    result = CognitoIamApiOperator(task_id="whoami", endpoint="/whoami").execute({})
    assert result["identity_id"].startswith(cognito_iam_conn.region + ":")
    assert result["caller_arn"].startswith("arn:aws:sts::")


def test_three_plus_pages_to_xcom_as_a_list_of_page_bodies(cognito_iam_conn: DevStack) -> None:
    pages = orders_op().execute({})

    assert len(pages) >= 3
    assert [r for page in pages for r in page["records"]] == expected_orders()
    assert pages[-1]["next_token"] is None
    assert api_requests(cognito_iam_conn, "GET /orders") == {"200": len(pages)}


def test_pages_with_response_filter_to_xcom_are_the_concatenated_records(cognito_iam_conn: DevStack) -> None:
    result = orders_op(response_filter=records).execute({})
    assert result == expected_orders()


def test_response_larger_than_max_xcom_bytes_fails_pointing_at_destination(cognito_iam_conn: DevStack) -> None:
    op = CognitoIamApiOperator(task_id="too_big", endpoint="/export", query={"size_mb": 5}, max_xcom_bytes=256 * 1024)
    with pytest.raises(XComTooLargeError, match="max_xcom_bytes=262144") as info:
        op.execute({})
    assert "destination=" in str(info.value)
    assert isinstance(info.value, AirflowFailException), "Airflow must not retry it"


def test_paginated_result_over_max_xcom_bytes_fails(cognito_iam_conn: DevStack) -> None:
    with pytest.raises(XComTooLargeError, match="set destination"):
        orders_op(max_xcom_bytes=10_000).execute({})
    # It stopped at the page that crossed the limit instead of fetching every page first.
    assert api_requests(cognito_iam_conn, "GET /orders")["200"] < 3


def test_response_check_false_fails_the_task(cognito_iam_conn: DevStack) -> None:
    op = orders_op(response_check=lambda response: len(response.json()["records"]) > 1000)
    with pytest.raises(AirflowException, match=r"response_check returned False for GET /orders \(HTTP 200\)"):
        op.execute({})


def test_response_check_and_filter_receive_context_values(cognito_iam_conn: DevStack) -> None:
    seen: list[str] = []

    def check(response: requests.Response, ds: str) -> bool:
        seen.append(ds)
        return response.status_code == 200

    def only_that_day(response: requests.Response, ds: str) -> list[str]:
        return [r["order_id"] for r in response.json()["records"] if r["date"] == ds]

    result = orders_op(response_check=check, response_filter=only_that_day).execute({"ds": DATE})
    assert result == [r["order_id"] for r in expected_orders()]
    assert set(seen) == {DATE}
    assert len(seen) >= 3


# --- storage -------------------------------------------------------------------------------------


def test_three_plus_pages_to_s3_as_one_json_line_per_page(cognito_iam_conn: DevStack) -> None:
    key = f"orders/dt={DATE}/pages.jsonl"
    result = orders_op(destination=f"s3://{cognito_iam_conn.bucket}/{key}").execute({})

    lines = s3_lines(cognito_iam_conn, key)
    assert len(lines) == result["pages"] == result["records"] >= 3
    assert [r for page in lines for r in page["records"]] == expected_orders()
    head = cognito_iam_conn.s3_client().head_object(Bucket=cognito_iam_conn.bucket, Key=key)
    assert head["ContentLength"] == result["bytes"]
    assert head["ContentType"] == "application/x-ndjson"


def test_pages_to_s3_one_json_line_per_record_with_filter_and_rerun_overwrites(cognito_iam_conn: DevStack) -> None:
    key = f"orders/dt={DATE}/records.jsonl"
    destination = f"s3://{cognito_iam_conn.bucket}/{key}"
    first = orders_op(destination=destination, response_filter=records).execute({})
    again = orders_op(destination=destination, response_filter=records).execute({})

    assert s3_lines(cognito_iam_conn, key) == expected_orders()
    assert first == again
    assert first["records"] == len(expected_orders())
    assert first["pages"] >= 3


def test_pages_to_a_file_destination(cognito_iam_conn: DevStack, tmp_path: Any) -> None:
    target = tmp_path / "dt=2024-01-02" / "orders.jsonl"
    result = orders_op(destination=target.as_uri(), response_filter=records).execute({})
    assert [json.loads(line) for line in target.read_text().splitlines()] == expected_orders()
    assert result["uri"] == target.as_uri()
    assert result["bytes"] == target.stat().st_size
    assert result["records"] == len(expected_orders())
    assert result["pages"] >= 3


def test_streamed_body_to_s3_is_byte_exact(cognito_iam_conn: DevStack) -> None:
    key = "export/twelve.jsonl"
    op = CognitoIamApiOperator(
        task_id="export", endpoint="/export", query={"size_mb": 12}, destination=f"s3://{cognito_iam_conn.bucket}/{key}"
    )
    result = op.execute({})

    body = cognito_iam_conn.s3_client().get_object(Bucket=cognito_iam_conn.bucket, Key=key)["Body"].read()
    assert len(body) == result["bytes"] == 12 * 2**20
    lines = body.splitlines()
    assert result["records"] == len(lines) == 12 * 1024
    assert [json.loads(line)["seq"] for line in lines] == list(range(12 * 1024))
    assert in_progress_uploads(cognito_iam_conn) == []


def test_outlets_get_an_asset_event_describing_the_object(cognito_iam_conn: DevStack) -> None:
    uri = f"s3://{cognito_iam_conn.bucket}/assets/dt={DATE}/orders.jsonl"
    folder = Asset(f"s3://{cognito_iam_conn.bucket}/assets")
    alias = AssetAlias("orders-by-day")
    op = orders_op(destination=uri, response_filter=records, outlets=[folder, alias])
    events = OutletEventAccessors()

    result = op.execute({"outlet_events": events})

    assert events[folder].extra == {
        "uri": uri,
        "bytes": result["bytes"],
        "records": result["records"],
        "pages": result["pages"],
        "format": "jsonl",
        "compression": None,
    }
    (added,) = events[alias].asset_alias_events
    assert added.dest_asset_key.uri == uri
    assert added.extra["records"] == len(expected_orders())


# --- retries, expiry, failures -------------------------------------------------------------------


def test_injected_503_429_and_resets_lose_and_duplicate_no_page(cognito_iam_conn: DevStack) -> None:
    stack = cognito_iam_conn
    # Faults spread over the pages: each page's first attempts fail, then it gets through.
    plan = [[("503", 2)], [("reset", 1), ("429", 1)], [("503", 1), ("reset", 1)], [("429", 1)]]

    def inject(kinds: list[tuple[str, int]]) -> None:
        for kind, count in kinds:
            stack.set_faults(kind, count=count, retry_after=0, path_prefix="/orders")

    def next_page_with_faults(response: requests.Response) -> dict[str, Any] | None:
        if plan:
            inject(plan.pop(0))
        return next_page(response)

    inject(plan.pop(0))
    key = "faults/orders.jsonl"
    result = orders_op(
        pagination=next_page_with_faults, destination=f"s3://{stack.bucket}/{key}", response_filter=records
    ).execute({})

    assert s3_lines(stack, key) == expected_orders()
    seen = api_requests(stack, "GET /orders")
    assert seen["200"] == result["pages"], "every page was delivered exactly once"
    assert seen["503"] == 3, seen
    assert seen["429"] >= 1, seen
    assert seen["0"] == 2, seen  # the devstack counts a reset (no response) as status 0


def test_body_reset_mid_page_refetches_that_page_once(proxy: CuttingProxy, cognito_iam_conn: DevStack) -> None:
    armed: list[int] = []

    def next_page_and_break_the_next_body(response: requests.Response) -> dict[str, Any] | None:
        if not armed:
            armed.append(1)
            proxy.cut_after(1000)  # the next response: status line, headers, then ~800 body bytes
        return next_page(response)

    key = "faults/cut-pages.jsonl"
    result = orders_op(
        cognito_iam_conn_id="cognito_iam_proxied",
        pagination=next_page_and_break_the_next_body,
        response_filter=records,
        destination=f"s3://{cognito_iam_conn.bucket}/{key}",
    ).execute({})

    assert proxy.cuts == 1
    assert s3_lines(cognito_iam_conn, key) == expected_orders()
    assert api_requests(cognito_iam_conn, "GET /orders")["200"] == result["pages"] + 1, "the cut page was sent twice"


def test_body_reset_mid_stream_restarts_the_upload_cleanly(proxy: CuttingProxy, cognito_iam_conn: DevStack) -> None:
    key = "faults/cut-export.jsonl"
    proxy.cut_after(20 * 2**20)  # two 8 MiB parts are already in S3 when the body breaks
    op = CognitoIamApiOperator(
        task_id="export",
        cognito_iam_conn_id="cognito_iam_proxied",
        endpoint="/export",
        query={"size_mb": 24},
        destination=f"s3://{cognito_iam_conn.bucket}/{key}",
    )
    result = op.execute({})

    assert proxy.cuts == 1
    body = cognito_iam_conn.s3_client().get_object(Bucket=cognito_iam_conn.bucket, Key=key)["Body"].read()
    assert len(body) == result["bytes"] == 24 * 2**20
    assert [json.loads(line)["seq"] for line in body.splitlines()] == list(range(24 * 1024))
    assert in_progress_uploads(cognito_iam_conn) == []


def test_failure_mid_stream_leaves_no_object_and_no_upload(proxy: CuttingProxy, cognito_iam_conn: DevStack) -> None:
    key = "faults/never.jsonl"
    proxy.cut_after(20 * 2**20)
    op = CognitoIamApiOperator(
        task_id="export",
        cognito_iam_conn_id="cognito_iam_proxied",
        endpoint="/export",
        query={"size_mb": 24},
        destination=f"s3://{cognito_iam_conn.bucket}/{key}",
        max_attempts=1,
    )
    with pytest.raises(CognitoIamRetryableError, match=r"GET /export body still failing after 1 attempt"):
        op.execute({})
    assert proxy.cuts == 1
    assert s3_keys(cognito_iam_conn, "faults/never") == []
    assert in_progress_uploads(cognito_iam_conn) == []


def test_failure_on_a_later_page_leaves_no_object(cognito_iam_conn: DevStack) -> None:
    calls: list[int] = []

    def second_page_then_a_bad_token(response: requests.Response) -> dict[str, Any] | None:
        calls.append(1)
        return next_page(response) if len(calls) < 2 else {"query": {"next_token": "not-a-token"}}

    key = "faults/bad-token.jsonl"
    op = orders_op(pagination=second_page_then_a_bad_token, destination=f"s3://{cognito_iam_conn.bucket}/{key}")
    with pytest.raises(AirflowFailException, match=r"HTTP 400.*Invalid next_token"):
        op.execute({})
    assert s3_keys(cognito_iam_conn, "faults/bad-token") == []
    assert in_progress_uploads(cognito_iam_conn) == []


def test_credentials_expiring_mid_pagination_are_refreshed_once(cognito_iam_conn: DevStack) -> None:
    stack = cognito_iam_conn
    exchanges_at_expiry: list[int] = []

    def exchanges() -> int:
        return int(stack.stats()["cognito"].get("GetCredentialsForIdentity", 0))

    def next_page_after_expiry(response: requests.Response) -> dict[str, Any] | None:
        if not exchanges_at_expiry:
            exchanges_at_expiry.append(exchanges())
            stack.expire_credentials()  # as if the 1 h credentials ran out between two pages
        return next_page(response)

    result = orders_op(pagination=next_page_after_expiry, response_filter=records).execute({})

    assert result == expected_orders()
    seen = api_requests(stack, "GET /orders")
    assert seen["403"] == 1, seen
    assert exchanges() == exchanges_at_expiry[0] + 1, "exactly one refresh"


def test_short_lived_credentials_are_renewed_across_pages(cognito_iam_conn: DevStack) -> None:
    # Credentials this short are inside the refresh window for most of the run; 2 s (not 1) leaves
    # a loaded CI machine time to deliver a request signed just before the mandatory window.
    cognito_iam_conn.set_credential_lifetime(2)
    result = orders_op(response_filter=records).execute({})
    assert result == expected_orders()


def test_api_refusal_names_role_and_action_and_is_not_retried(cognito_iam_conn: DevStack) -> None:
    op = CognitoIamApiOperator(task_id="admin", endpoint="/admin/users")
    with pytest.raises(AirflowFailException) as info:
        op.execute({})
    message = str(info.value)
    assert "HTTP 403" in message
    assert "execute-api:Invoke" in message
    assert "Role " in message
    assert "may not" in message
    assert api_requests(cognito_iam_conn, "GET /admin/*") == {"403": 1}


@pytest.mark.parametrize(("auth", "token_use"), [("id_token", "id"), ("access_token", "access")])
def test_bearer_modes_for_cognito_authorizer_apis(cognito_iam_conn: DevStack, auth: str, token_use: str) -> None:
    op = CognitoIamApiOperator(task_id="bearer", endpoint="/bearer/whoami", auth=auth)  # type: ignore[arg-type]
    result = op.execute({})
    assert result["token_use"] == token_use
    assert result["username"] == cognito_iam_conn.username


def test_post_is_not_repeated_after_a_503_unless_opted_in(cognito_iam_conn: DevStack) -> None:
    cognito_iam_conn.set_faults("503", count=1, path_prefix="/jobs")
    op = CognitoIamApiOperator(task_id="start", endpoint="/jobs", method="POST", json={"polls": 1})
    with pytest.raises(CognitoIamRetryableError, match=r"HTTP 503.*not repeated"):
        op.execute({})
    assert api_requests(cognito_iam_conn, "POST /jobs") == {"503": 1}, "the job may exist: not sent again"

    cognito_iam_conn.set_faults("503", count=1, path_prefix="/jobs")
    op = CognitoIamApiOperator(
        task_id="start", endpoint="/jobs", method="POST", json={"polls": 1}, retry_non_idempotent=True
    )
    assert op.execute({})["status"] == "pending"
    assert api_requests(cognito_iam_conn, "POST /jobs") == {"503": 2, "202": 1}


# --- host pinning --------------------------------------------------------------------------------


def test_absolute_endpoint_on_another_host_is_refused_before_any_request(cognito_iam_conn: DevStack) -> None:
    op = CognitoIamApiOperator(task_id="exfil", endpoint="http://127.0.0.2:9/collect")
    with pytest.raises(AirflowFailException, match=r"HostNotAllowedError.*127\.0\.0\.2:9"):
        op.execute({})
    assert cognito_iam_conn.stats()["api"]["requests"] == 0
    assert cognito_iam_conn.stats()["cognito"] == {}, "not even a sign-in"


def test_pagination_to_another_host_is_refused_and_nothing_is_written(cognito_iam_conn: DevStack) -> None:
    key = "pinning/orders.jsonl"
    op = orders_op(
        pagination=lambda response: {"endpoint": "https://evil.example.com/orders"},
        destination=f"s3://{cognito_iam_conn.bucket}/{key}",
    )
    with pytest.raises(AirflowFailException, match=r"pagination pointed outside.*evil\.example\.com"):
        op.execute({})
    assert api_requests(cognito_iam_conn, "GET /orders") == {"200": 1}
    assert s3_keys(cognito_iam_conn, "pinning/") == []


def test_pagination_by_absolute_link_on_the_same_host_is_allowed(cognito_iam_conn: DevStack) -> None:
    base = cognito_iam_conn.api_url

    def follow_link(response: requests.Response) -> dict[str, Any] | None:
        token = response.json()["next_token"]
        return {"endpoint": f"{base}/orders", "query": {"next_token": token}} if token else None

    assert orders_op(pagination=follow_link, response_filter=records).execute({}) == expected_orders()


def test_pagination_that_repeats_a_request_is_stopped(cognito_iam_conn: DevStack) -> None:
    with pytest.raises(AirflowFailException, match="already made"):
        orders_op(pagination=lambda response: {"query": {"next_token": None}}).execute({})


# --- logs ----------------------------------------------------------------------------------------


def test_logs_name_requests_and_summary_but_no_secret(
    cognito_iam_conn: DevStack, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    key = "logs/orders.jsonl"
    op = orders_op(destination=f"s3://{cognito_iam_conn.bucket}/{key}", headers={"X-Api-Key": "hdr-secret-value"})
    result = op.execute({})

    # The hook logs through stdlib logging, the operator through Airflow's structlog (to stderr/stdout).
    captured = capfd.readouterr()
    text = caplog.text + captured.out + captured.err
    assert f"GET /orders?date&limit: {result['pages']} page(s)" in text
    assert f"s3://{cognito_iam_conn.bucket}/{key}" in text
    from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

    hook = CognitoIamHook()
    creds = hook.get_credentials()
    tokens = hook.get_tokens()
    for secret in (
        cognito_iam_conn.password,
        cognito_iam_conn.client_secret,
        creds.secret_key,
        creds.token,
        tokens.id_token,
        tokens.refresh_token,
        "hdr-secret-value",
        DATE,  # query values stay out of logs too
    ):
        assert secret
        assert secret not in text
