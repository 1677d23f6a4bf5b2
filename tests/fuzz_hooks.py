"""Schemathesis hooks for tests/portal/test_api_fuzz.py, loaded by the `st` process it starts
(SCHEMATHESIS_HOOKS names this file): random UUIDs in a path only ever find nothing (404),
so each path id is also drawn from the rows the test made, and the answers about real objects
(an unacknowledged alarm, a ticket with no SLA, a credit-noted invoice) are checked too.

The ids come as JSON in the file FLEETPORT_FUZZ_IDS names: `{"alarms": [...], "line_id": [...]}`,
keyed by the collection before `{id}` in the path, or by the name of any other path parameter.
No Django here: this runs inside schemathesis's process.
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

import schemathesis
from hypothesis import strategies as st


@cache
def _known() -> dict[str, list[Any]]:
    path = os.environ.get("FLEETPORT_FUZZ_IDS")
    if not path:
        return {}
    with open(path, encoding="utf-8") as file:
        return dict(json.load(file))


def _collection(path: str) -> str:
    """`/api/v1/invoices/{id}/lines/{line_id}/usage/` -> `invoices`."""
    parts = path.strip("/").split("/")
    return parts[parts.index("{id}") - 1] if "{id}" in parts else ""


@schemathesis.hook
def flatmap_path_parameters(context: schemathesis.HookContext, path_parameters: dict[str, Any]) -> Any:
    known = _known()
    operation = context.operation
    if operation is None or not path_parameters:
        return st.just(path_parameters)
    choices: dict[str, st.SearchStrategy[Any]] = {}
    for name, value in path_parameters.items():
        key = _collection(operation.path) if name == "id" else name
        ids = known.get(key, [])
        # The generated value stays one choice in four: the 404 of an unknown id is checked too.
        choices[name] = st.sampled_from([value, *ids, *ids, *ids]) if ids else st.just(value)
    return st.fixed_dictionaries(choices)
