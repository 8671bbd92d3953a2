"""Filters (``trace_insights.core.filters``) compiled to SQLAlchemy predicates over ``traces``.

Semantics, as MLflow's search:
- a span condition means "the trace has a span such that…", each one on its own
  (``span.name = 'a' AND span.type = 'TOOL'`` may be two different spans); inside
  ``count(...)`` the conditions hold for the same span, and the count includes zero;
- ``tags.k != 'v'`` matches traces that have the tag with another value;
- attribute and assessment values compare by type: a number with numbers, true/false with
  booleans, a quoted string with the text of any scalar (so ``cache_hit = 'true'`` also finds
  a boolean true), ordering comparisons only with numbers;
- ``span.type`` is the normalized type, so OpenInference and GenAI spans match.

Span conditions that per-trace span stats answer (``trace_insights.truth.span_stats``), tag
conditions, and on PostgreSQL number comparisons of assessments (``traces.current_assessments``)
read the trace row itself. Each other condition on spans, tags or assessments becomes one
derived table of the matching trace ids (grouped, so it never multiplies rows) outer-joined to
``traces``: the database computes each set once with a hash join — which spills to disk
gracefully at any size — even for the CASE expressions of a correlation count, instead of a
subquery per trace. Values only ever travel as bound parameters (a JSON path is a constant
with the value as its variable); no SQL text is built from the filter.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from trace_insights.core import money
from trace_insights.core.assessments import EXPECTATION
from trace_insights.core.filters import And, Comparison, Count, Node, Not, Or, Value
from trace_insights.truth import dialects, span_stats
from trace_insights.truth.models import Assessment, Span, Trace

_SPAN_COLUMNS = {
    "type": Span.span_type,
    "name": Span.name,
    "status": Span.status,
    "content": Span.content,
    "model": Span.model,
    "tool_name": Span.tool_name,
    "duration_ms": Span.duration_ms,
}
_TRACE_COLUMNS = {
    "status": Trace.status,
    "name": Trace.root_name,
    "execution_time_ms": Trace.execution_time_ms,
    "timestamp_ms": Trace.timestamp_ms,
    "input_tokens": Trace.input_tokens,
    "output_tokens": Trace.output_tokens,
    "total_tokens": Trace.total_tokens,
    "span_count": Trace.span_count,
    "unpriced_calls": Trace.unpriced_calls,
}


_SOME = {(">", 0), (">=", 1), ("!=", 0)}  # count(...) comparisons meaning "at least one"
_NONE = {("=", 0), ("<", 1), ("<=", 0)}


# a number compared with any of a name's values; a string or boolean value never matches
_NUMBER_PATHS = {
    "=": "$[*] ? (@ == $v)",
    "!=": "$[*] ? (@ != $v)",
    "<": "$[*] ? (@ < $v)",
    "<=": "$[*] ? (@ <= $v)",
    ">": "$[*] ? (@ > $v)",
    ">=": "$[*] ? (@ >= $v)",
}


class FilterError(ValueError):
    """A well-formed filter that cannot be compiled (a value the key cannot hold)."""


@dataclass
class Compiled:
    """A filter as a predicate over ``traces`` plus the derived tables it reads: call
    ``joined`` on a selection from ``traces`` to outer-join them."""

    predicate: ColumnElement[bool]
    tables: list[Any] = field(default_factory=list)  # subqueries keyed by a unique trace_id

    def joined(self, query: sa.Select) -> sa.Select:  # type: ignore[type-arg]
        for table in self.tables:
            query = query.outerjoin(table, table.c.trace_id == Trace.trace_id)
        return query


def compile_filter(node: Node, dialect: str, experiment_ids: list[str] | None = None) -> Compiled:
    """``experiment_ids`` narrows the span, tag and assessment tables (the caller still
    restricts the traces)."""
    compiler = _Compiler(dialect, experiment_ids)
    predicate = compiler.trace(node)
    return Compiled(predicate, compiler.tables)


class _Compiler:
    def __init__(self, dialect: str, experiment_ids: list[str] | None) -> None:
        self.dialect = dialects.of(dialect)
        self.experiment_ids = experiment_ids
        self.tables: list[Any] = []

    def _having(self, column: Any, scope: Any, *conditions: Any) -> ColumnElement[bool]:
        """Traces with a row (span, tag, assessment) meeting ``conditions``: one grouped table
        of their ids, outer-joined, rather than a subquery per trace."""
        query = sa.select(column.label("trace_id")).where(*conditions).group_by(column)
        if self.experiment_ids is not None and scope is not None:
            query = query.where(scope.in_(self.experiment_ids))
        table = query.subquery()
        self.tables.append(table)
        return table.c.trace_id.is_not(None)

    def trace(self, node: Node) -> ColumnElement[bool]:
        if isinstance(node, And):
            return sa.and_(*(self.trace(operand) for operand in node.operands))
        if isinstance(node, Or):
            return sa.or_(*(self.trace(operand) for operand in node.operands))
        if isinstance(node, Not):
            return sa.not_(self.trace(node.operand))
        if isinstance(node, Count):
            return self.count(node)
        key = node.key
        if key.scope == "span":
            present = self._present(node)
            if present is not None:
                return present
            return self._having(Span.trace_id, Span.experiment_id, self.span(node))
        if key.scope == "tags":
            return compare(
                self.dialect.json_member(Trace.tags, key.name), node.operator, node.value
            )
        if key.scope == "assessment":
            current = self._current_number(node)
            if current is not None:
                return current
            value = self.typed(Assessment.value, None, node)
            return self._having(
                Assessment.trace_id,
                Assessment.experiment_id,
                Assessment.counted(),
                Assessment.name == key.name,
                value,
            )
        if key.scope == "expectation":
            value = self.typed(Assessment.value, None, node)
            return self._having(
                Assessment.trace_id,
                Assessment.experiment_id,
                Assessment.kind == EXPECTATION,
                Assessment.name == key.name,
                value,
            )
        if key.name == "text":
            content = compare(Span.content, node.operator, node.value)
            return self._having(Span.trace_id, Span.experiment_id, content)
        if key.name == "cost":  # dollars as asked, pico-USD as stored
            return compare(Trace.cost, node.operator, _pico(node.value))
        return compare(_TRACE_COLUMNS[key.name], node.operator, node.value)

    def count(self, node: Count) -> ColumnElement[bool]:
        """The number of matching spans per trace (zero for traces without one)."""
        present = self._present(node.clause)
        if present is not None and (node.operator, node.value) in _SOME:
            return present
        if present is not None and (node.operator, node.value) in _NONE:
            return sa.not_(present)
        counted = self._counted(node.clause)
        if counted is not None:
            return compare(counted, node.operator, node.value)
        query = (
            sa.select(Span.trace_id.label("trace_id"), sa.func.count().label("n"))
            .where(self.span(node.clause))
            .group_by(Span.trace_id)
        )
        if self.experiment_ids is not None:
            query = query.where(Span.experiment_id.in_(self.experiment_ids))
        table = query.subquery()
        self.tables.append(table)
        return compare(sa.func.coalesce(table.c.n, 0), node.operator, node.value)

    def _present(self, condition: Node) -> ColumnElement[bool] | None:
        """Whether the trace has a span meeting ``condition``, from its span stats (which hold
        no zero counts); None when they cannot tell. On PostgreSQL a key test: it skips
        reading the count, a third of a correlation's cost over a million traces."""
        names = span_stats.counted_by(condition)
        if names is None:
            return None
        keyed = self.dialect.has_any_key(Trace.span_stats, names)
        if keyed is not None:
            return keyed
        counted = self._counted(condition)
        return None if counted is None else counted > 0

    def _current_number(self, node: Comparison) -> ColumnElement[bool] | None:
        """A comparison with a number, on the trace row's current assessment values (a JSON
        path with the number as its variable, never in its text) instead of joining the
        assessments; None where it does not apply (other values and operators, SQLite)."""
        value = node.value
        path = _NUMBER_PATHS.get(node.operator)
        if path is None or isinstance(value, bool) or not isinstance(value, int | float):
            return None
        tested: ColumnElement[bool] | None = self.dialect.json_number_test(
            Trace.current_assessments, node.key.name, path, value
        )
        return tested

    def _counted(self, condition: Node) -> Any:
        """The trace's number of spans meeting ``condition``, from its span stats; None when
        they cannot tell."""
        names = span_stats.counted_by(condition)
        if names is None:
            return None
        members = [self.dialect.json_member(Trace.span_stats, name) for name in names]
        counts = [sa.func.coalesce(sa.cast(member, sa.Integer), 0) for member in members]
        return sum(counts[1:], counts[0])

    def span(self, node: Node) -> ColumnElement[bool]:
        """Conditions on one span row (inside count(), or one span clause)."""
        if isinstance(node, And):
            return sa.and_(*(self.span(operand) for operand in node.operands))
        if isinstance(node, Or):
            return sa.or_(*(self.span(operand) for operand in node.operands))
        if isinstance(node, Not):
            return sa.not_(self.span(node.operand))
        assert isinstance(node, Comparison)
        if node.key.attribute:
            return self.typed(Span.attributes, node.key.name, node)
        return compare(_SPAN_COLUMNS[node.key.name], node.operator, node.value)

    def typed(self, column: Any, path: str | None, node: Comparison) -> ColumnElement[bool]:
        """A JSON scalar (the column itself, or its member ``path``) against typed values."""
        kind, text = json_scalar(column, path, self.dialect)
        values = node.value if isinstance(node.value, tuple) else (node.value,)
        operator = node.operator
        if operator in ("IN", "NOT IN"):
            matched = sa.or_(*(self._typed_one(kind, text, "=", v) for v in values))
            return matched if operator == "IN" else sa.and_(kind.is_not(None), sa.not_(matched))
        return self._typed_one(kind, text, operator, values[0])

    def _typed_one(self, kind: Any, text: Any, operator: str, value: Value) -> ColumnElement[bool]:
        if isinstance(value, bool):
            if operator not in ("=", "!="):
                raise FilterError(f"true/false compare with = or !=, not {operator}")
            literal = "true" if value else "false"
            same = text == literal if operator == "=" else text != literal
            return sa.and_(kind.in_(self.dialect.json_booleans), same)
        if isinstance(value, int | float):
            if "LIKE" in operator:
                raise FilterError("LIKE needs a quoted pattern")
            number = sa.case((kind.in_(self.dialect.json_numbers), sa.cast(text, sa.Float)))
            return compare(number, operator, value)
        if operator in ("<", "<=", ">", ">="):
            raise FilterError(f"{operator} compares numbers; {value!r} is text")
        return compare(text, operator, value)


def json_scalar(column: Any, path: str | None, dialect: dialects.Dialect) -> tuple[Any, Any]:
    """(JSON type name, text of the scalar) of a stored JSON value or of its member ``path``."""
    if path is not None and '"' in path:
        raise FilterError("attribute names cannot contain a double quote")
    return dialect.json_scalar(column, path)


# a backslash escapes % and _ on both databases (PostgreSQL's default; SQLite has none)
_OPERATORS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "=": lambda column, value: column == value,
    "!=": lambda column, value: column != value,
    "<": lambda column, value: column < value,
    "<=": lambda column, value: column <= value,
    ">": lambda column, value: column > value,
    ">=": lambda column, value: column >= value,
    "LIKE": lambda column, value: column.like(value, escape="\\"),
    "NOT LIKE": lambda column, value: column.not_like(value, escape="\\"),
    "ILIKE": lambda column, value: column.ilike(value, escape="\\"),
    "NOT ILIKE": lambda column, value: column.not_ilike(value, escape="\\"),
    "IN": lambda column, value: column.in_(value),
    "NOT IN": lambda column, value: column.not_in(value),
}


def _pico(value: Any) -> Any:
    """A filter's dollars as a bigint of pico-USD (beyond a bigint, its end: no cost is)."""
    if isinstance(value, tuple):
        return tuple(_pico(item) for item in value)
    assert isinstance(value, int | float)  # the parser lets only numbers compare with it
    return max(-money.MAX_TRACE, min(money.MAX_TRACE, money.scaled(value)))


def compare(column: Any, operator: str, value: Any) -> ColumnElement[bool]:
    compare = _OPERATORS.get(operator)
    if compare is None:
        raise FilterError(f"unknown operator {operator}")
    return compare(column, value)
