"""The original manager's exception module, for ``from ... exceptions import NotFoundError`` style imports.

The same classes as :mod:`orchestra_memory.errors` (re-exported, not copies): ``except`` clauses written
against either module catch the same errors.
"""

from .errors import ConnectionError, DuplicateError, NotFoundError, OperationError, StorageError, ValidationError

__all__ = ["StorageError", "ConnectionError", "ValidationError", "OperationError", "NotFoundError", "DuplicateError"]
