"""How the PostgreSQL store tells the errors of a batch apart: the ones after which the same
batch is simply tried again (a lost lock race, a connection found dead before COMMIT), the
server's refusals for want of resources (`StoreUnavailable`), and a lone op's own failure."""

from __future__ import annotations

import psycopg
from psycopg import errors as pg_errors

# errors after which the whole batch is simply tried again: another transaction won a row lock
# race (a deadlock PostgreSQL broke by aborting us, or a serialization failure)
_RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)
_RETRIES = 5


def _unavailable(exc: psycopg.Error) -> bool:
    """The server refused for want of resources (class 53: disk full, out of memory, too
    many connections) or because it is starting up (57P03): it answered, so the transaction
    was rolled back, and the same write can work later."""
    state = exc.sqlstate or ""
    return state.startswith("53") or state == "57P03"


class _Reconnect(Exception):
    """The pooled connection a batch was given turned out dead (the server restarted, or
    closed it) before the batch's COMMIT was sent: nothing was committed, so the batch can
    simply be tried again on a fresh connection (the pool discards the dead one)."""

    def __init__(self, error: psycopg.OperationalError) -> None:
        super().__init__(str(error))
        self.error = error


class _Failed(Exception):
    """A lone op's failure, carried out of the transaction block so it is rolled back."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error
