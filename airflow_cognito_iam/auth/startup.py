"""Keep the import-time heap out of the first full garbage collection of a task process.

A task process imports Airflow, boto3, botocore and this package (~180k objects tracked by the
collector) and only then builds its first clients. The imports leave the oldest generation's
counter just short of its threshold, so the first few thousand allocations of the sign-in trigger
a full collection that walks every one of those objects, finds nothing to free (modules,
classes and functions live as long as the process) and costs ~170-190 ms of a cold start.
``gc.freeze()`` moves the objects that exist now into the permanent generation, which collections
skip: later garbage is still collected as usual (GC is not switched off). It is what the Python
documentation recommends for a heap built once at start-up, and what Airflow's own executors do
before forking. Done once per process; ``AIRFLOW_COGNITO_IAM_GC_FREEZE=0`` turns it off.
"""

from __future__ import annotations

import gc
import os
import threading

_DONE = False
_LOCK = threading.Lock()


def freeze_startup_heap() -> bool:
    """Freeze the objects alive now, once per process; True if this call froze them."""
    global _DONE
    if _DONE:
        return False
    with _LOCK:
        if _DONE:
            return False
        _DONE = True
    if os.environ.get("AIRFLOW_COGNITO_IAM_GC_FREEZE", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    gc.freeze()
    return True
