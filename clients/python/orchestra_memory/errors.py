"""The exception hierarchy of memoryd (SPEC §3), the same names as the original memory manager.

    StorageError                      INTERNAL (13)        any storage failure not covered below
    ├── ConnectionError               UNAVAILABLE (14)     backend unreachable, or memoryd itself unreachable
    ├── ValidationError               INVALID_ARGUMENT (3) bad input
    ├── OperationError                ABORTED (10)         the backend failed an operation (``.operation``)
    ├── NotFoundError                 NOT_FOUND (5)        no such id (or expired)
    ├── DuplicateError                ALREADY_EXISTS (6)   id or content exists
    └── RpcError                      (any code)           an error of the call itself, not of storage:
        └── DeadlineExceededError     DEADLINE_EXCEEDED    UNIMPLEMENTED, RESOURCE_EXHAUSTED, PERMISSION_DENIED,
                                                           DEADLINE_EXCEEDED, CANCELLED, UNAVAILABLE (draining)

``RpcError`` derives from ``StorageError`` so that ``except StorageError`` still catches every failure a
call can raise, as in the original manager. Every exception carries ``code`` (gRPC canonical code),
``error_type`` (``orchestra.rpc.v1.ErrorType`` value), ``message``, ``operation`` and ``details`` (dict).

Transport failures (nothing listening on the socket, the connection closed under a call, the daemon
draining with nowhere to retry) raise :class:`ConnectionError` with ``code`` 14 and the ``OSError`` (if any)
in ``original_exception``. Note that this ``ConnectionError`` shadows Python's builtin of the same name
inside modules that do ``from orchestra_memory import *``; it is *not* a subclass of the builtin.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

# gRPC canonical codes.
OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
ALREADY_EXISTS = 6
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
ABORTED = 10
OUT_OF_RANGE = 11
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
DATA_LOSS = 15
UNAUTHENTICATED = 16

CODE_NAMES = {
    0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
    6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
    10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
    15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}

# orchestra.rpc.v1.ErrorType values.
ERROR_TYPE_UNSPECIFIED = 0
STORAGE_ERROR = 1
CONNECTION_ERROR = 2
VALIDATION_ERROR = 3
OPERATION_ERROR = 4
NOT_FOUND_ERROR = 5
DUPLICATE_ERROR = 6


class StorageError(Exception):
    """Base of every error a memoryd call raises.

    Args:
        message: what went wrong, with the offending value.
        original_exception: the lower-level exception, when there is one (e.g. the ``OSError`` of a
            failed connect).
    """

    default_code = INTERNAL
    default_error_type = STORAGE_ERROR

    def __init__(
        self,
        message: str = "",
        original_exception: Optional[BaseException] = None,
        *,
        code: Optional[int] = None,
        error_type: Optional[int] = None,
        operation: str = "",
        details: Optional[Mapping[str, str]] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.original_exception = original_exception
        self.code = self.default_code if code is None else code
        self.error_type = self.default_error_type if error_type is None else error_type
        self.operation = operation
        self.details: Dict[str, str] = dict(details or {})

    @property
    def code_name(self) -> str:
        """The upper-case gRPC name of ``code``, e.g. ``NOT_FOUND``."""
        return CODE_NAMES.get(self.code, str(self.code))

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code_name})"

    def __reduce__(self):  # picklable despite the keyword-only arguments
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls, state):
    e = cls.__new__(cls)
    Exception.__init__(e, state.get("message", ""))
    e.__dict__.update(state)
    return e


class ConnectionError(StorageError):  # noqa: A001 - the name is part of the API (SPEC §3)
    """The storage backend, or memoryd itself, cannot be reached."""

    default_code = UNAVAILABLE
    default_error_type = CONNECTION_ERROR


class ValidationError(StorageError):
    """The input was rejected (missing user_id, wrong embedding size, bad id, size over a limit)."""

    default_code = INVALID_ARGUMENT
    default_error_type = VALIDATION_ERROR


class OperationError(StorageError):
    """The backend refused or failed an operation after retries; ``operation`` names it."""

    default_code = ABORTED
    default_error_type = OPERATION_ERROR

    def __init__(self, operation: str, message: str = "", original_exception: Optional[BaseException] = None,
                 **kwargs: Any) -> None:
        kwargs["operation"] = operation
        super().__init__(message, original_exception, **kwargs)

    def __str__(self) -> str:
        return f"{self.operation}: {self.message}" if self.operation else self.message


class NotFoundError(StorageError):
    """No item with that id (or it has expired)."""

    default_code = NOT_FOUND
    default_error_type = NOT_FOUND_ERROR


class DuplicateError(StorageError):
    """The id exists (without upsert), or the content does when rejection was asked for.

    ``details.get("existing_id")`` names the existing item when the server knows it.
    """

    default_code = ALREADY_EXISTS
    default_error_type = DUPLICATE_ERROR


class RpcError(StorageError):
    """An error of the call itself rather than of storage (``error_type`` 0): unknown method,
    deadline exceeded, overload, peer not allowed, server draining. ``code`` tells which."""

    default_code = UNKNOWN
    default_error_type = ERROR_TYPE_UNSPECIFIED


class DeadlineExceededError(RpcError):
    """The call's timeout passed, on the server (DEADLINE_EXCEEDED) or locally while waiting."""

    default_code = DEADLINE_EXCEEDED


_BY_TYPE = {
    STORAGE_ERROR: StorageError,
    CONNECTION_ERROR: ConnectionError,
    VALIDATION_ERROR: ValidationError,
    OPERATION_ERROR: OperationError,
    NOT_FOUND_ERROR: NotFoundError,
    DUPLICATE_ERROR: DuplicateError,
}


def error_from_status(status: Any) -> StorageError:
    """The exception for an ``orchestra.rpc.v1.Status`` whose code is not OK."""
    details = dict(status.details)
    common = dict(code=status.code, error_type=status.error_type, details=details)
    cls = _BY_TYPE.get(status.error_type)
    if cls is OperationError:
        return OperationError(status.operation, status.message, **common)
    if cls is not None:
        return cls(status.message, operation=status.operation, **common)
    if status.code == DEADLINE_EXCEEDED:
        return DeadlineExceededError(status.message, operation=status.operation, **common)
    return RpcError(status.message, operation=status.operation, **common)


__all__ = [
    "StorageError", "ConnectionError", "ValidationError", "OperationError", "NotFoundError",
    "DuplicateError", "RpcError", "DeadlineExceededError", "error_from_status",
]
