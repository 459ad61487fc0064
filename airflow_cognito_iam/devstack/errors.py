"""The error answer shared by the strict layer's handlers."""

from __future__ import annotations


class CognitoError(Exception):
    """An error answer in the AWS JSON protocol shape."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
