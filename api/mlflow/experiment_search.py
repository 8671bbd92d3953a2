"""MLflow's experiment search: its ``filter`` (conditions on attributes joined by AND, e.g.
``name LIKE 'shop%' AND creation_time > 1735689600000``) and ``order_by`` (``["name DESC"]``),
read as SQLAlchemy expressions, and keyset pages over the order. Experiment tags are not kept
here, so a condition on one is a 400 that says so rather than an empty answer."""

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from trace_insights.api.errors import invalid
from trace_insights.truth.filter_sql import compare
from trace_insights.truth.models import Experiment

# an ingested experiment has no name: its id is its name; nothing changes one after creation
_COLUMNS: dict[str, Any] = {
    "name": sa.func.coalesce(Experiment.name, Experiment.experiment_id),
    "creation_time": Experiment.created_ms,
    "last_update_time": Experiment.created_ms,
    "experiment_id": Experiment.experiment_id,
}
_NUMERIC = {"creation_time", "last_update_time"}
_CONDITION = re.compile(
    r"""\s*(?P<key>(?:attributes?\.|tags?\.)?(?:`[^`]*`|[A-Za-z_][\w.]*))\s*
    (?P<op><=|>=|!=|<>|=|<|>|(?:NOT\s+)?I?LIKE\b)\s*
    (?P<value>'(?:[^']|'')*'|"(?:[^"]|"")*"|-?\d+)\s*""",
    re.IGNORECASE | re.VERBOSE,
)
_AND = re.compile(r"AND\b", re.IGNORECASE)


def condition(text: str | None) -> ColumnElement[bool]:
    if not text or not text.strip():
        return sa.true()
    clauses, position = [], 0
    while True:
        match = _CONDITION.match(text, position)
        if match is None:
            raise invalid(
                f"invalid value for 'filter': cannot read a condition at position {position} of "
                f"{text!r}; write <attribute> <operator> <value>, joined by AND"
            )
        clauses.append(_clause(match["key"], match["op"], match["value"]))
        position = match.end()
        if position == len(text):
            return sa.and_(*clauses)
        joined = _AND.match(text, position)
        if joined is None:
            raise invalid(f"invalid value for 'filter': expected AND at position {position}")
        position = joined.end()


def _clause(key: str, operator: str, raw: str) -> ColumnElement[bool]:
    lowered = key.lower()
    if lowered.startswith(("tag.", "tags.")):
        raise invalid(f"invalid value for 'filter': experiment tags are not kept ({key})")
    name = re.sub(r"^attributes?\.", "", key, flags=re.IGNORECASE).strip("`")
    if name not in _COLUMNS or name == "experiment_id":
        known = ", ".join(sorted(set(_COLUMNS) - {"experiment_id"}))
        raise invalid(f"invalid value for 'filter': unknown attribute {name!r}; use {known}")
    op = " ".join(operator.upper().split()).replace("<>", "!=")
    if name in _NUMERIC:
        if raw[0] in "'\"" or "LIKE" in op:
            raise invalid(f"invalid value for 'filter': {name} compares with a number")
        return compare(_COLUMNS[name], op, int(raw))
    if raw[0] not in "'\"":
        raise invalid(f"invalid value for 'filter': {name} compares with a quoted string")
    if op in ("<", "<=", ">", ">="):
        raise invalid(f"invalid value for 'filter': {name} takes =, !=, LIKE or ILIKE")
    return compare(_COLUMNS[name], op, raw[1:-1].replace(raw[0] * 2, raw[0]))


@dataclass(frozen=True)
class Order:
    key: str
    descending: bool

    @classmethod
    def of(cls, order_by: list[str]) -> "Order":
        if not order_by:
            return cls("experiment_id", False)
        if len(order_by) > 1:
            raise invalid("invalid value for 'order_by': give one column")
        parts = order_by[0].split()
        key = re.sub(r"^attributes?\.", "", parts[0] if parts else "", flags=re.IGNORECASE)
        direction = parts[1].upper() if len(parts) == 2 else "ASC"
        if key not in _COLUMNS or len(parts) > 2 or direction not in ("ASC", "DESC"):
            known = ", ".join(sorted(_COLUMNS))
            raise invalid(
                f"invalid value for 'order_by': {order_by[0]!r}; use one of {known}, ASC or DESC"
            )
        return cls(key, direction == "DESC")

    def ordering(self) -> list[ColumnElement[Any]]:
        column = _COLUMNS[self.key]
        if self.descending:
            return [column.desc(), Experiment.experiment_id.desc()]
        return [column.asc(), Experiment.experiment_id.asc()]

    def after(self, token: str, query_key: str) -> ColumnElement[bool]:
        """The rows past the last of the previous page, whose (value, id) ``token`` holds."""
        try:
            held, value, last_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        except (ValueError, TypeError, binascii.Error):
            raise invalid("invalid value for 'page_token': not a token this API issued") from None
        if held != query_key:
            raise invalid("invalid value for 'page_token': it belongs to another query")
        pair = sa.tuple_(_COLUMNS[self.key], Experiment.experiment_id)
        last = sa.tuple_(sa.literal(value), sa.literal(last_id))
        return pair < last if self.descending else pair > last

    def token(self, row: Any, query_key: str) -> str:
        value = {"name": row.name or row.experiment_id, "experiment_id": row.experiment_id}.get(
            self.key, row.created_ms
        )
        held = json.dumps([query_key, value, row.experiment_id])
        return base64.urlsafe_b64encode(held.encode()).decode()
