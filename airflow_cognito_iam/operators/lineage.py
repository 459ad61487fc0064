"""OpenLineage for CognitoIamApiOperator: the API as input, the written object as output.

Imports are lazy (the openlineage provider is an optional extra), as its developer guide asks.
Names carry no query values, headers or bodies: those can hold personal data or secrets. The input
dataset is the API's origin (namespace) and path (name); the output is ``s3://bucket`` + key, or
``file`` + path, with output statistics (records, bytes) once the task has run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from airflow_cognito_iam.auth.origins import describe_origin, origin_of

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage


def api_dataset(url: str) -> tuple[str, str]:
    """``(namespace, name)`` of the API endpoint: its origin and its path, no query."""
    return describe_origin(origin_of(url)), urlsplit(url).path or "/"


def destination_dataset(uri: str) -> tuple[str, str]:
    """``(namespace, name)`` of a destination URI: ``s3://bucket`` + key, ``file`` + path, else scheme://host + path."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return "file", unquote(parts.path)
    return f"{scheme}://{parts.netloc}", unquote(parts.path).lstrip("/")


def lineage(
    endpoint_url: str | None, destination: str | None, summary: Mapping[str, Any] | None = None
) -> OperatorLineage[Any, Any]:
    """The OperatorLineage for one run (statistics only when ``summary`` is known)."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import output_statistics_output_dataset

    inputs = []
    if endpoint_url:
        namespace, name = api_dataset(endpoint_url)
        inputs.append(InputDataset(namespace=namespace, name=name))
    outputs = []
    if destination:
        namespace, name = destination_dataset(str(summary.get("uri", destination)) if summary else destination)
        facets: dict[str, Any] = {}
        if summary is not None:
            facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=int(summary.get("records", 0)), size=int(summary.get("bytes", 0))
            )
        outputs.append(OutputDataset(namespace=namespace, name=name, outputFacets=facets))
    return OperatorLineage(inputs=inputs, outputs=outputs)
