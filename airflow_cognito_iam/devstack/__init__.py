"""Offline AWS for demos and tests: Cognito user and identity pools, S3 and an IAM-protected API.

``from airflow_cognito_iam.devstack import DevStack`` is resolved lazily so that importing the
package (the pytest plugin does) stays cheap and works without moto installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_cognito_iam.devstack.stack import DevStack

__all__ = ["DevStack"]


def __getattr__(name: str) -> Any:
    if name == "DevStack":
        from airflow_cognito_iam.devstack.stack import DevStack

        return DevStack
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
