"""The errors the emulator answers with: a code, a message and an HTTP status.

The runtime (rest-json) says ``ValidationError``; the control plane (JSON 1.1) says
``ValidationException`` (botocore's service models). Model code raises ``validation`` and the
control-plane responses rename it, so shared checks need not know who called them.
"""

from __future__ import annotations


class ApiError(Exception):
    """An AWS error response; botocore reads ``code`` and ``status`` (responses.render_error)."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def validation(message: str) -> ApiError:
    return ApiError("ValidationError", message, 400)


def cp_validation(message: str) -> ApiError:
    return ApiError("ValidationException", message, 400)


def not_found(name_or_arn: str, status: int) -> ApiError:
    # The runtime answers 404, the control plane 400 (botocore's models; DESIGN.md §2).
    return ApiError("ResourceNotFound", f"Resource Not Found: FeatureGroup {name_or_arn} "
                    "not found.", status)


class RequestInvalid(ApiError):
    """A ValidationError that rejects a whole BatchWriteRecord call, not just one entry."""


def request_validation(message: str) -> ApiError:
    return RequestInvalid("ValidationError", message, 400)
