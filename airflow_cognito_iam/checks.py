"""Ready-made ``response_check`` callables, importable by dotted path (what deferrable mode needs).

A deferred wait runs in the triggerer, so its check must be importable there: a function in a
module, named by ``"package.module.function"``, with JSON-serialisable keyword arguments
(``response_check_kwargs``). Lambdas and functions defined in a DAG file are not importable.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import requests
from airflow.sdk import PokeReturnValue

#: Status values that mean finished or failed in the async-job APIs we meet most often.
DONE = ("done", "succeeded", "success", "completed", "complete", "finished")
FAILED = ("failed", "failure", "error", "cancelled", "canceled", "aborted", "timed_out")


class JobFailedError(RuntimeError):
    """The job reported failure: waiting longer cannot help."""


def job_status(
    response: requests.Response,
    *,
    status_field: str = "status",
    done: Collection[str] = DONE,
    failed: Collection[str] = FAILED,
    result_field: str | None = "result_path",
    error_field: str = "error",
) -> PokeReturnValue:
    """Done when ``body[status_field]`` is in ``done``; a status in ``failed`` raises JobFailedError.

    The XCom value is ``body[result_field]`` (e.g. where to fetch the result), else the whole body.
    Comparison ignores case.
    """
    body: Any = response.json()
    if not isinstance(body, dict):
        raise JobFailedError(f"the job status is not a JSON object (got {type(body).__name__})")
    status = str(body.get(status_field, "")).lower()
    if status in {value.lower() for value in failed}:
        reason = body.get(error_field) or "no reason given"
        raise JobFailedError(f"the job reported {status_field}={status!r}: {str(reason)[:300]}")
    is_done = status in {value.lower() for value in done}
    value = body.get(result_field) if result_field and result_field in body else body
    return PokeReturnValue(is_done=is_done, xcom_value=value if is_done else None)
