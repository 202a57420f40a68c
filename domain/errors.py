"""One exception root for codesearch; each leaf's docstring is its default message."""

from __future__ import annotations


class CodesearchError(Exception):
    """codesearch failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self)


class InvalidInput(CodesearchError):
    """The input is not valid."""


class NotFound(CodesearchError):
    """Nothing with that id exists."""


class Conflict(CodesearchError):
    """The request conflicts with the current state."""


class DatabaseUnavailable(CodesearchError):
    """The database cannot be reached."""


class DatabaseNotReady(CodesearchError):
    """The database is missing something codesearch needs."""


class EmbedderError(CodesearchError):
    """The embedder failed."""


class EmbedderUnavailable(EmbedderError):
    """The embedder cannot be reached or did not answer in time; retrying may help."""


class EmbedderModelMissing(EmbedderError):
    """The embedding model is not available to the embedder."""


class EmbedderMismatch(EmbedderError):
    """The index was built by a different embedder than the one configured."""
