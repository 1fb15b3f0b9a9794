"""One exception hierarchy for business rules; views and the API translate it to HTTP."""

from __future__ import annotations


class DomainError(Exception):
    """A request the rules refuse. Always a 4xx, never a partial write."""

    status_code = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    status_code = 404


class PermissionDenied(DomainError):
    status_code = 403


class Conflict(DomainError):
    status_code = 409


class InsufficientFunds(DomainError):
    """An adjustment would take a balance below zero."""

    status_code = 409


class ValidationFailed(DomainError):
    """One or more items of a request are invalid; `errors` says which and why."""

    status_code = 422

    def __init__(self, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.errors = errors or []


class Gone(DomainError):
    """Something that existed and is no longer usable (a used, revoked or expired link)."""

    status_code = 410
