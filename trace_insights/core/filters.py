"""The filter language of trace search and filter correlation: text → syntax tree.

    span.type = 'LLM' AND count(span.status = 'ERROR') = 0
    tags.`deployment.environment` != 'dev' OR NOT (feedback.quality >= 0.8)

Precedence NOT > AND > OR, parentheses, case-insensitive keywords, single or double quotes
(doubling the quote escapes it), backticks around keys with dots, strings may span lines.
A ``ParseError`` says where and what was expected. Compilation to SQL is in
``trace_insights.truth.filter_sql``; this module knows no storage.
"""

import contextlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from trace_insights.core.trace_tags import MLFLOW_METADATA

Value = str | int | float | bool
Operator = Literal[
    "=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE", "IN", "NOT IN"
]

SPAN_FIELDS = {
    "type": "string",
    "name": "string",
    "status": "string",
    "content": "string",
    "model": "string",
    "tool_name": "string",
    "duration_ms": "number",
}
TRACE_FIELDS = {
    "status": "string",
    "name": "string",
    "text": "string",
    "execution_time_ms": "number",
    "timestamp_ms": "number",
    "input_tokens": "number",
    "output_tokens": "number",
    "total_tokens": "number",
    "span_count": "number",
    "cost": "number",  # USD, of its priced calls
    "unpriced_calls": "number",
}


# MLflow's trace search keys (its SearchTraceUtils), read as ours: its attributes (bare, or
# after attributes., attribute. or trace.) and the trace metadata Trace Insights keeps as tags.
MLFLOW_ATTRIBUTES = {
    "status": "status",
    "name": "name",
    "timestamp_ms": "timestamp_ms",
    "timestamp": "timestamp_ms",
    "execution_time_ms": "execution_time_ms",
    "execution_time": "execution_time_ms",
    "text": "text",
}
_SCOPES = (
    "span",
    "trace",
    "tags",
    "tag",
    "feedback",
    "assessment",
    "assessments",
    "expectation",
    "attribute",
    "attributes",
    "metadata",
    "request_metadata",
)


class ParseError(ValueError):
    def __init__(self, text: str, position: int, message: str) -> None:
        line = text.count("\n", 0, position) + 1
        super().__init__(f"filter at position {position} (line {line}): {message}")
        self.position = position


@dataclass(frozen=True)
class Key:
    """``scope`` span | trace | tags | assessment | expectation; ``name`` the field, tag key,
    attribute (``attribute`` set for span.attributes) or assessment name."""

    scope: str
    name: str
    attribute: bool = False

    def __str__(self) -> str:
        if self.scope == "span" and self.attribute:
            return f"span.attributes.{self.name}"
        return f"{self.scope}.{self.name}"


@dataclass(frozen=True)
class Comparison:
    key: Key
    operator: Operator
    value: Value | tuple[Value, ...]


@dataclass(frozen=True)
class Count:
    """``count(<span clause>) <op> <n>``: spans of the trace matching ``clause``."""

    clause: "Node"
    operator: str
    value: int


@dataclass(frozen=True)
class Not:
    operand: "Node"


@dataclass(frozen=True)
class And:
    operands: tuple["Node", ...]


@dataclass(frozen=True)
class Or:
    operands: tuple["Node", ...]


Node = Comparison | Count | Not | And | Or

_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
    |(?P<backtick>`[^`]*`)
    |(?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    |(?P<operator><=|>=|!=|<>|=|<|>)
    |(?P<punct>[().,\[\]])
    |(?P<word>[A-Za-z_][A-Za-z0-9_]*)""",
    re.VERBOSE,
)
_KEYWORDS = {"AND", "OR", "NOT", "IN", "LIKE", "ILIKE", "COUNT", "TRUE", "FALSE"}


@dataclass(frozen=True)
class _Token:
    kind: str  # string, backtick, number, operator, punct, word, keyword, end
    text: str
    position: int


# What one filter may hold: bounds that keep its SQL cheap to plan and run (a 5,000-item IN
# list cost 5 s; long NOT/AND chains overflowed SQLite's expression tree).
MAX_CHARS = 4_000
MAX_DEPTH = 32  # parentheses and NOTs inside one another
MAX_CONDITIONS = 100
MAX_IN_VALUES = 500
_INT64 = 2**63


def parse(text: str) -> Node:
    """Raises ParseError for anything that is not a well-formed filter within the bounds."""
    if len(text) > MAX_CHARS:
        raise ParseError(text[:40], 0, f"the filter is longer than {MAX_CHARS} characters")
    if "\x00" in text:
        raise ParseError(text, text.index("\x00"), "the filter holds a NUL character")
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0
        self.conditions = 0

    # -- grammar -------------------------------------------------------------------------

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise ParseError(self.text, 0, "the filter is empty")
        node = self.disjunction(in_count=False)
        token = self.peek()
        if token.kind != "end":
            raise self.error(token, "expected AND, OR or the end of the filter")
        return node

    def disjunction(self, in_count: bool) -> Node:
        operands = [self.conjunction(in_count)]
        while self.keyword("OR"):
            operands.append(self.conjunction(in_count))
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def conjunction(self, in_count: bool) -> Node:
        operands = [self.negation(in_count)]
        while self.keyword("AND"):
            operands.append(self.negation(in_count))
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def negation(self, in_count: bool) -> Node:
        at = self.peek()
        if self.keyword("NOT"):
            with self.nested(at):
                return Not(self.negation(in_count))
        if self.punct("("):
            with self.nested(at):
                node = self.disjunction(in_count)
            self.expect_punct(")", "a closing parenthesis")
            return node
        if self.peek().kind == "keyword" and self.peek().text == "COUNT":
            if in_count:
                raise self.error(self.peek(), "count() cannot be nested")
            return self.count()
        return self.comparison(in_count)

    def count(self) -> Count:
        self.advance()
        self.expect_punct("(", "'(' after count")
        start = self.peek()
        clause = self.disjunction(in_count=True)
        self.expect_punct(")", "')' closing count(")
        operator = self.peek()
        if operator.kind != "operator":
            raise self.error(operator, "expected a comparison (=, !=, <, <=, >, >=) after count()")
        self.advance()
        number = self.peek()
        if number.kind != "number" or not re.fullmatch(r"\d+", number.text):
            raise self.error(number, "expected a whole number to compare count() with")
        self.advance()
        if not _only_span_keys(clause):
            raise self.error(start, "count() takes conditions on span.* keys only")
        return Count(clause, _operator(operator.text), int(number.text))

    @contextlib.contextmanager
    def nested(self, at: _Token) -> Iterator[None]:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(at, f"the filter is nested deeper than {MAX_DEPTH} levels")
        yield
        self.depth -= 1

    def comparison(self, in_count: bool) -> Comparison:
        key_token = self.peek()
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise self.error(key_token, f"the filter has more than {MAX_CONDITIONS} conditions")
        key = self.key()
        if in_count and key.scope != "span":
            raise self.error(key_token, f"count() takes conditions on span.* keys, not {key}")
        negated = self.keyword("NOT")
        token = self.peek()
        if token.kind == "keyword" and token.text in ("LIKE", "ILIKE"):
            self.advance()
            pattern = self.peek()
            if pattern.kind != "string":
                raise self.error(pattern, f"expected a quoted pattern after {token.text}")
            self.advance()
            operator = f"NOT {token.text}" if negated else token.text
            text = _unquote(pattern.text)
            if re.search(r"(?<!\\)(\\\\)*\\$", text):
                raise self.error(
                    pattern,
                    "a pattern cannot end with a lone backslash (it escapes "
                    "the next character; write \\\\ for a backslash)",
                )
            return self.checked(key, key_token, operator, text)
        if token.kind == "keyword" and token.text == "IN":
            self.advance()
            self.expect_punct("(", "'(' after IN")
            values = [self.value()]
            while self.punct(","):
                if len(values) == MAX_IN_VALUES:
                    raise self.error(
                        self.peek(), f"an IN list holds at most {MAX_IN_VALUES} values"
                    )
                values.append(self.value())
            self.expect_punct(")", "')' closing the IN list")
            return self.checked(key, key_token, "NOT IN" if negated else "IN", tuple(values))
        if negated:
            raise self.error(token, "expected LIKE, ILIKE or IN after NOT")
        if token.kind != "operator":
            raise self.error(token, "expected an operator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN)")
        self.advance()
        return self.checked(key, key_token, _operator(token.text), self.value())

    def key(self) -> Key:
        token = self.peek()
        if token.kind != "word":
            raise self.error(
                token,
                "expected a key such as span.type, trace.status, tags.<key> or feedback.<name>",
            )
        scope = token.text.lower()
        self.advance()
        if scope in MLFLOW_ATTRIBUTES and not self.at_punct("."):
            return Key("trace", MLFLOW_ATTRIBUTES[scope])  # MLflow's bare ``status = 'OK'``
        if scope not in _SCOPES:
            raise self.error(
                token,
                f"unknown key {token.text!r}; keys start with span., trace., "
                "tags., feedback. or assessment. (or MLflow's attributes. and metadata.)",
            )
        self.expect_punct(".", f"'.' after {token.text}")
        name_token = self.peek()
        name = self.name(f"a field after {scope}.")
        if scope in ("tag", "tags"):
            return Key("tags", name)
        if scope in ("feedback", "assessment", "assessments"):
            return Key("assessment", name)
        if scope == "expectation":
            return Key("expectation", name)
        if scope in ("attribute", "attributes") or (scope == "trace" and name in MLFLOW_ATTRIBUTES):
            if name not in MLFLOW_ATTRIBUTES:
                known = ", ".join(sorted(MLFLOW_ATTRIBUTES))
                raise self.error(name_token, f"unknown key {scope}.{name}; attributes are {known}")
            return Key("trace", MLFLOW_ATTRIBUTES[name])
        if scope in ("metadata", "request_metadata"):
            if name not in MLFLOW_METADATA:
                known = ", ".join(sorted(MLFLOW_METADATA))
                raise self.error(
                    name_token, f"metadata key {name!r} is not kept; the kept ones are {known}"
                )
            return Key("tags", MLFLOW_METADATA[name])
        if scope == "span" and name == "attributes":
            if self.punct("["):
                attribute = self.peek()
                if attribute.kind != "string":
                    raise self.error(attribute, "expected a quoted attribute name in [...]")
                self.advance()
                self.expect_punct("]", "']' after the attribute name")
                return Key("span", _unquote(attribute.text), attribute=True)
            self.expect_punct(".", "'.' or '[' after span.attributes")
            return Key("span", self.dotted("an attribute name"), attribute=True)
        fields = SPAN_FIELDS if scope == "span" else TRACE_FIELDS
        if name not in fields:
            raise self.error(
                name_token,
                f"unknown key {scope}.{name}; {scope} keys are {', '.join(sorted(fields))}",
            )
        return Key(scope, name)

    def name(self, what: str) -> str:
        token = self.peek()
        if token.kind == "backtick":
            self.advance()
            return token.text[1:-1]
        if token.kind in ("word", "keyword"):
            self.advance()
            return token.text if token.kind == "word" else token.text.lower()
        raise self.error(token, f"expected {what}")

    def dotted(self, what: str) -> str:
        """An attribute name: backticked, or words joined by dots (``llm.token_count``)."""
        parts = [self.name(what)]
        while self.peek().kind == "punct" and self.peek().text == ".":
            self.advance()
            parts.append(self.name(what))
        return ".".join(parts)

    def value(self) -> Value:
        token = self.peek()
        self.advance()
        if token.kind == "string":
            return _unquote(token.text)
        if token.kind == "number":
            if re.search(r"[.eE]", token.text):
                number = float(token.text)
                if not math.isfinite(number) or abs(number) >= _INT64:
                    raise self.error(token, "the number is out of range")
                return number
            if abs(int(token.text)) >= _INT64:
                raise self.error(token, "the number is out of range (a 64-bit integer)")
            return int(token.text)
        if token.kind == "keyword" and token.text in ("TRUE", "FALSE"):
            return token.text == "TRUE"
        raise self.error(token, "expected a value: a quoted string, a number, true or false")

    def checked(self, key: Key, at: _Token, operator: str, value: object) -> Comparison:
        kind = _kind(key)
        values = value if isinstance(value, tuple) else (value,)
        if kind == "number" and any(isinstance(v, str | bool) for v in values):
            raise self.error(at, f"{key} is a number; compare it with a number")
        if kind == "number" and "LIKE" in operator:
            raise self.error(at, f"{key} is a number; LIKE needs text")
        if kind == "string" and operator in ("<", "<=", ">", ">="):
            raise self.error(at, f"{key} is text; use =, !=, LIKE, ILIKE or IN")
        if key.scope == "tags" and any(not isinstance(v, str) for v in values):
            raise self.error(at, f"{key}: tag values are text; quote the value")
        return Comparison(key, operator, value)  # type: ignore[arg-type]

    # -- tokens --------------------------------------------------------------------------

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> None:
        if self.tokens[self.index].kind != "end":
            self.index += 1

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token.kind == "keyword" and token.text == word:
            self.advance()
            return True
        return False

    def at_punct(self, char: str) -> bool:
        token = self.peek()
        return token.kind == "punct" and token.text == char

    def punct(self, char: str) -> bool:
        token = self.peek()
        if token.kind == "punct" and token.text == char:
            self.advance()
            return True
        return False

    def expect_punct(self, char: str, what: str) -> None:
        if not self.punct(char):
            raise self.error(self.peek(), f"expected {what}")

    def error(self, token: _Token, message: str) -> ParseError:
        found = "the end of the filter" if token.kind == "end" else repr(token.text)
        return ParseError(self.text, token.position, f"{message}, found {found}")


def _tokenize(text: str) -> list[_Token]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            char = text[position]
            if char in "'\"`":
                raise ParseError(text, position, f"unterminated {char}-quoted text")
            raise ParseError(text, position, f"unexpected character {char!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            value = match.group()
            if kind == "word" and value.upper() in _KEYWORDS:
                kind, value = "keyword", value.upper()
            tokens.append(_Token(kind, value, position))
        position = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _unquote(text: str) -> str:
    quote = text[0]
    return text[1:-1].replace(quote * 2, quote)


def _operator(text: str) -> Operator:
    return "!=" if text == "<>" else text  # type: ignore[return-value]


def _kind(key: Key) -> str:
    """number, string or any (attributes and assessments compare by the value's type)."""
    if key.scope == "span" and not key.attribute:
        return SPAN_FIELDS[key.name]
    if key.scope == "trace":
        return TRACE_FIELDS[key.name]
    if key.scope == "tags":
        return "string"
    return "any"


def _only_span_keys(node: Node) -> bool:
    if isinstance(node, Comparison):
        return node.key.scope == "span"
    if isinstance(node, Not):
        return _only_span_keys(node.operand)
    if isinstance(node, And | Or):
        return all(_only_span_keys(operand) for operand in node.operands)
    return False


class Unwritable(ValueError):
    """A tree the language cannot spell: a key name holding a backtick."""


def unparse(node: Node) -> str:
    """The filter text of a tree: ``parse(unparse(node)) == node`` for every tree it writes.
    The dashboard shows it and puts it in the Traces view's filter bar."""
    if isinstance(node, Comparison):
        if isinstance(node.value, tuple):
            values = "(" + ", ".join(_literal(v) for v in node.value) + ")"
            return f"{_key_text(node.key)} {node.operator} {values}"
        return f"{_key_text(node.key)} {node.operator} {_literal(node.value)}"
    if isinstance(node, Count):
        return f"count({unparse(node.clause)}) {node.operator} {node.value}"
    if isinstance(node, Not):
        return f"NOT {_operand(node.operand)}"
    joiner = " AND " if isinstance(node, And) else " OR "
    return joiner.join(_operand(operand) for operand in node.operands)


def _operand(node: Node) -> str:
    return f"({unparse(node)})" if isinstance(node, And | Or) else unparse(node)


def _key_text(key: Key) -> str:
    if key.scope == "span" and key.attribute:
        return f"span.attributes[{_literal(key.name)}]"
    if "`" in key.name:
        raise Unwritable(f"{key.scope} name {key.name!r} holds a backtick")
    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.name) and key.name.upper() not in _KEYWORDS
    return f"{key.scope}.{key.name}" if plain else f"{key.scope}.`{key.name}`"


def _literal(value: Value) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < _INT64:
        return str(int(value))  # equal in the tree, and reads as the user wrote it
    if isinstance(value, int | float):
        return repr(value)
    return "'" + value.replace("'", "''") + "'"
