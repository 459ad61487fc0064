"""Task processes started together: each gets ready (imports, cache read), then all are released at once."""

from __future__ import annotations

import subprocess
import sys


def run_released_together(code: str, count: int, timeout: float = 300) -> list[str]:
    """Run ``count`` Python processes of ``code``; release them when all printed ``ready``; their stdouts.

    ``code`` prints ``ready`` (flushed) when it has done its set-up, then reads a line from stdin
    before the step every process must take at the same moment. A failed process fails the test.
    """
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for process in processes:
        assert process.stdout is not None
        while (line := process.stdout.readline()) and line.strip() != "ready":
            pass
        assert line, f"a process died before it was ready: {process.stderr.read() if process.stderr else ''}"
    outputs = [process.communicate(input="go\n", timeout=timeout) for process in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
    return [out for out, _ in outputs]
