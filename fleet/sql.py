"""Raw SQL helpers for the ingest worker's hot statements (PostgreSQL)."""

from __future__ import annotations

from typing import Any

from django.db import connection


def binding_cursor() -> Any:
    """A server-side-binding psycopg cursor on Django's connection (same transaction).

    Django's cursors bind parameters on the client, rendering arrays as SQL literals escaped
    in Python; with %b placeholders and server-side binding, arrays go in binary as they are.
    """
    import psycopg

    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)
