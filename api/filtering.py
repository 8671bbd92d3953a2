"""A filter string from a request, compiled: or a 400 naming the field, the position and what
was expected."""

from trace_insights.api.errors import invalid
from trace_insights.core.filters import ParseError, parse
from trace_insights.truth.filter_sql import Compiled, FilterError, compile_filter


def condition(
    text: str, field: str, dialect: str, experiment_ids: list[str] | None = None
) -> Compiled:
    """A filter string compiled, or 400 naming the field, the position and what was expected."""
    try:
        return compile_filter(parse(text), dialect, experiment_ids)
    except (ParseError, FilterError) as exc:
        raise invalid(f"invalid {field}: {exc}") from None
