"""A small, safe condition language for routing rules (DESIGN §3).

``channel == "voice" and customer.tier in ["platinum", "gold"]``
``skills.mortgages >= 4 and customer.language in languages``

Tokenizer + recursive-descent parser; never ``eval``. Every attribute must be declared in a
:class:`Schema` (name -> type, plus an owning *scope*), and every operator is type-checked when the
text is compiled, so a typo or a type mismatch is an error with a position — never a silent false.
A compiled :class:`Condition` is a tree of closures; :meth:`Condition.bind` pre-resolves the
attributes of one scope (e.g. the interaction) into constants, so an agent predicate costs a few
dict look-ups per agent.

Grammar (lowest precedence first; comparisons do not chain)::

    expr    := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | cmp
    cmp     := primary [("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") primary]
    primary := STRING | NUMBER | "-" NUMBER | "true" | "false" | NAME | "(" expr ")" | list
    list    := "[" [literal ("," literal)* [","]] "]"
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Evaluator = Callable[[Mapping[str, Any]], Any]

# Types are plain strings: scalars and homogeneous lists of scalars. "list[]" is an empty literal.
STR, INT, FLOAT, BOOL = "str", "int", "float", "bool"
NUMERIC = frozenset({INT, FLOAT})
SCALARS = frozenset({STR, INT, FLOAT, BOOL})
_DEFAULTS: dict[str, Any] = {STR: "", INT: 0, FLOAT: 0.0, BOOL: False}

INTERACTION = "interaction"
AGENT = "agent"


def list_of(t: str) -> str:
    return f"list[{t}]"


def _elem(t: str) -> str | None:
    return t[5:-1] if t.startswith("list[") else None


def default_for(t: str) -> Any:
    return () if t.startswith("list[") else _DEFAULTS[t]


class ConditionError(ValueError):
    """A syntax, name or type error at ``pos`` (0-based character offset) in the condition text."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(f"{message} (at column {pos + 1})")
        self.message = message
        self.pos = pos


@dataclass(frozen=True)
class Attr:
    type: str
    scope: str = INTERACTION


@dataclass(frozen=True)
class Schema:
    """Declared attributes. ``maps`` are open-ended families: ``skills.<any name>`` is an int that
    defaults to 0, because skills are added without redeploying rules."""

    attrs: Mapping[str, Attr]
    maps: Mapping[str, Attr] = field(default_factory=dict)

    def lookup(self, name: str) -> tuple[Attr, str | None] | None:
        """(attribute, map key or None) for a dotted name, or None when it is not declared."""
        if name in self.attrs:
            return self.attrs[name], None
        prefix, dot, key = name.partition(".")
        if dot and key and prefix in self.maps and "." not in key:
            return self.maps[prefix], key
        return None

    def merged(self, other: Schema) -> Schema:
        return Schema({**self.attrs, **other.attrs}, {**self.maps, **other.maps})


# What a `when` condition may read: the interaction, its customer, the entry queue and the clock.
INTERACTION_SCHEMA = Schema(
    {
        "channel": Attr(STR),
        "direction": Attr(STR),
        "customer.id": Attr(STR),
        "customer.tier": Attr(STR),
        "customer.language": Attr(STR),
        "customer.segments": Attr(list_of(STR)),
        "customer.relationship_manager": Attr(STR),
        "customer.last_agent": Attr(STR),
        "customer.do_not_contact": Attr(BOOL),
        "customer.vulnerable": Attr(BOOL),
        "interaction.age": Attr(FLOAT),
        "interaction.priority": Attr(INT),
        "interaction.topic": Attr(STR),
        "interaction.intent": Attr(STR),
        "queue.name": Attr(STR),
        "queue.depth": Attr(INT),
        "time.hour": Attr(INT),
        "time.minute": Attr(INT),
        "time.weekday": Attr(INT),
    }
)

# What an agent predicate (a step's `target`) may read about the candidate agent.
AGENT_SCHEMA = Schema(
    {
        "agent.id": Attr(STR, AGENT),
        "languages": Attr(list_of(STR), AGENT),
        "teams": Attr(list_of(STR), AGENT),
    },
    {"skills": Attr(INT, AGENT)},
)

# A target may also compare the agent with the interaction: `customer.language in languages`.
TARGET_SCHEMA = AGENT_SCHEMA.merged(INTERACTION_SCHEMA)


# --------------------------------------------------------------------------- tokenizer

_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|-)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # number | string | name | op | kw | end
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            if text[pos] in "\"'":
                raise ConditionError("unterminated string", pos)
            raise ConditionError(f"unexpected character {text[pos]!r}", pos)
        kind = m.lastgroup or ""
        if kind != "ws":
            value = m.group()
            if kind == "name" and value.lower() in _KEYWORDS and value in (value.lower(), value.title()):
                kind, value = "kw", value.lower()
            tokens.append(Token(kind, value, pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Node:
    pos: int
    type: str


@dataclass(frozen=True)
class Literal(Node):
    value: Any


@dataclass(frozen=True)
class AttrRef(Node):
    name: str
    scope: str
    map_key: str | None


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class BoolOp(Node):
    op: str  # "and" | "or"
    left: Node
    right: Node


@dataclass(frozen=True)
class Compare(Node):
    op: str  # == != < <= > >= in "not in"
    left: Node
    right: Node


_CMP_OPS = {"==", "!=", "<", "<=", ">", ">="}
_PY_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _same_kind(a: str, b: str) -> bool:
    return a == b or (a in NUMERIC and b in NUMERIC)


class _Parser:
    def __init__(self, text: str, schema: Schema) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.schema = schema

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def _advance(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def _is(self, kind: str, text: str | None = None) -> bool:
        t = self.tok
        return t.kind == kind and (text is None or t.text == text)

    def _expect(self, kind: str, text: str, what: str) -> Token:
        if not self._is(kind, text):
            raise ConditionError(f"expected {what}, found {self._describe(self.tok)}", self.tok.pos)
        return self._advance()

    @staticmethod
    def _describe(t: Token) -> str:
        return "end of condition" if t.kind == "end" else repr(t.text)

    def parse(self) -> Node:
        if self._is("end"):
            raise ConditionError("empty condition", 0)
        node = self._or()
        if not self._is("end"):
            raise ConditionError(f"unexpected {self._describe(self.tok)}", self.tok.pos)
        if node.type != BOOL:
            raise ConditionError(f"condition must be a boolean, not {node.type}", node.pos)
        return node

    def _bool_operand(self, node: Node, op: str) -> Node:
        if node.type != BOOL:
            raise ConditionError(f"'{op}' needs boolean operands, got {node.type}", node.pos)
        return node

    def _or(self) -> Node:
        left = self._and()
        while self._is("kw", "or"):
            self._advance()
            right = self._and()
            left = BoolOp(
                left.pos, BOOL, "or", self._bool_operand(left, "or"), self._bool_operand(right, "or")
            )
        return left

    def _and(self) -> Node:
        left = self._not()
        while self._is("kw", "and"):
            self._advance()
            right = self._not()
            left = BoolOp(
                left.pos, BOOL, "and", self._bool_operand(left, "and"), self._bool_operand(right, "and")
            )
        return left

    def _not(self) -> Node:
        if self._is("kw", "not"):
            t = self._advance()
            operand = self._not()
            return Not(t.pos, BOOL, self._bool_operand(operand, "not"))
        return self._cmp()

    def _cmp(self) -> Node:
        left = self._primary()
        op_tok = self.tok
        if op_tok.kind == "op" and op_tok.text in _CMP_OPS or self._is("kw", "in"):
            op = self._advance().text
        elif (
            self._is("kw", "not")
            and self.tokens[self.i + 1].kind == "kw"
            and self.tokens[self.i + 1].text == "in"
        ):
            self.i += 2
            op = "not in"
        else:
            return left
        right = self._primary()
        node = self._check_compare(op, left, right, op_tok.pos)
        nxt = self.tok
        if (nxt.kind == "op" and nxt.text in _CMP_OPS) or (nxt.kind == "kw" and nxt.text == "in"):
            raise ConditionError("chained comparisons are not supported; use 'and'", nxt.pos)
        return node

    def _check_compare(self, op: str, left: Node, right: Node, pos: int) -> Compare:
        lt, rt = left.type, right.type
        if op in ("in", "not in"):
            elem = _elem(rt)
            if elem is None:
                raise ConditionError(f"right side of '{op}' must be a list, got {rt}", right.pos)
            if _elem(lt) is not None:
                raise ConditionError(f"left side of '{op}' must be a single value, got {lt}", left.pos)
            if elem and not _same_kind(lt, elem):
                raise ConditionError(f"cannot test {lt} membership in {rt}", pos)
        elif op in ("==", "!="):
            if not _same_kind(lt, rt) and not (_elem(lt) is not None and _elem(rt) == ""):
                raise ConditionError(f"cannot compare {lt} with {rt} using '{op}'", pos)
        else:
            if lt not in NUMERIC or rt not in NUMERIC:
                raise ConditionError(f"'{op}' needs numbers, got {lt} and {rt}", pos)
        return Compare(left.pos, BOOL, op, left, right)

    def _primary(self) -> Node:
        t = self.tok
        if t.kind == "op" and t.text == "(":
            self._advance()
            node = self._or()
            self._expect("op", ")", "')'")
            return node
        if t.kind == "op" and t.text == "[":
            return self._list()
        if t.kind == "name":
            self._advance()
            found = self.schema.lookup(t.text)
            if found is None:
                raise ConditionError(f"unknown attribute '{t.text}'", t.pos)
            attr, key = found
            return AttrRef(t.pos, attr.type, t.text, attr.scope, key)
        return self._literal()

    def _literal(self) -> Literal:
        t = self._advance()
        if t.kind == "number":
            return Literal(
                t.pos, FLOAT if "." in t.text else INT, float(t.text) if "." in t.text else int(t.text)
            )
        if t.kind == "op" and t.text == "-" and self.tok.kind == "number":
            n = self._literal()
            return Literal(t.pos, n.type, -n.value)
        if t.kind == "string":
            return Literal(t.pos, STR, _unescape(t.text[1:-1]))
        if t.kind == "kw" and t.text in ("true", "false"):
            return Literal(t.pos, BOOL, t.text == "true")
        raise ConditionError(f"expected a value, found {self._describe(t)}", t.pos)

    def _list(self) -> Literal:
        start = self._advance()
        items: list[Literal] = []
        while not self._is("op", "]"):
            item = self._literal()
            if items and not _same_kind(items[0].type, item.type):
                raise ConditionError(f"list mixes {items[0].type} and {item.type}", item.pos)
            items.append(item)
            if not self._is("op", "]"):
                self._expect("op", ",", "',' or ']'")
        self._advance()
        elem = ""
        if items:
            types = {i.type for i in items}
            elem = FLOAT if types == {INT, FLOAT} else items[0].type
        return Literal(start.pos, list_of(elem), tuple(i.value for i in items))


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


# --------------------------------------------------------------------------- compilation

_EMPTY: Mapping[str, Any] = {}


def _compile(node: Node, bound: Mapping[str, Mapping[str, Any]]) -> tuple[bool, Any]:
    """(is_constant, value-or-evaluator). Constants are folded so bound attributes cost nothing."""
    if isinstance(node, Literal):
        return True, node.value
    if isinstance(node, AttrRef):
        default = default_for(node.type)
        if node.scope in bound:
            ctx = bound[node.scope]
            if node.map_key is not None:
                return True, ctx.get(node.name.partition(".")[0], _EMPTY).get(node.map_key, default)
            return True, ctx.get(node.name, default)
        name = node.name
        if node.map_key is not None:
            prefix, key = name.partition(".")[0], node.map_key
            return False, lambda c: c.get(prefix, _EMPTY).get(key, default)
        return False, lambda c: c.get(name, default)
    if isinstance(node, Not):
        const, inner = _compile(node.operand, bound)
        if const:
            return True, not inner
        return False, lambda c: not inner(c)
    if isinstance(node, BoolOp):
        lc, left = _compile(node.left, bound)
        rc, right = _compile(node.right, bound)
        if node.op == "and":
            if lc:
                return (True, False) if not left else (rc, right)
            if rc:
                return (False, left) if right else (True, False)
            return False, lambda c: bool(left(c)) and bool(right(c))
        if lc:
            return (True, True) if left else (rc, right)
        if rc:
            return (True, True) if right else (False, left)
        return False, lambda c: bool(left(c)) or bool(right(c))
    assert isinstance(node, Compare)
    lc, left = _compile(node.left, bound)
    rc, right = _compile(node.right, bound)
    if node.op in ("in", "not in"):
        negate = node.op == "not in"
        if rc:
            members = frozenset(right)
            if lc:
                return True, (left in members) != negate
            return False, (lambda c: left(c) not in members) if negate else (lambda c: left(c) in members)
        if lc:
            return False, (lambda c: left not in right(c)) if negate else (lambda c: left in right(c))
        return False, (lambda c: left(c) not in right(c)) if negate else (lambda c: left(c) in right(c))
    fn = _PY_OPS[node.op]
    if lc and rc:
        return True, fn(left, right)
    if lc:
        return False, lambda c: fn(left, right(c))
    if rc:
        return False, lambda c: fn(left(c), right)
    return False, lambda c: fn(left(c), right(c))


def _as_evaluator(compiled: tuple[bool, Any]) -> Evaluator:
    const, value = compiled
    if const:
        result = bool(value)
        return lambda _c: result
    return value  # type: ignore[no-any-return]


def _collect_attrs(node: Node, out: list[str]) -> None:
    if isinstance(node, AttrRef):
        if node.name not in out:
            out.append(node.name)
    elif isinstance(node, Not):
        _collect_attrs(node.operand, out)
    elif isinstance(node, BoolOp | Compare):
        _collect_attrs(node.left, out)
        _collect_attrs(node.right, out)


class Condition:
    """A parsed, type-checked condition. ``evaluate(ctx)`` reads every attribute from ``ctx``;
    ``bind(interaction=ctx)`` returns an evaluator with that scope frozen into constants."""

    __slots__ = ("text", "schema", "ast", "attributes", "_eval")

    def __init__(self, text: str, schema: Schema) -> None:
        self.text = text
        self.schema = schema
        self.ast = _Parser(text, schema).parse()
        attrs: list[str] = []
        _collect_attrs(self.ast, attrs)
        self.attributes: tuple[str, ...] = tuple(attrs)
        self._eval = _as_evaluator(_compile(self.ast, {}))

    def evaluate(self, ctx: Mapping[str, Any]) -> bool:
        return bool(self._eval(ctx))

    def bind(self, **scopes: Mapping[str, Any]) -> Evaluator:
        return _as_evaluator(_compile(self.ast, scopes))

    def reads_scope(self, scope: str) -> bool:
        for name in self.attributes:
            found = self.schema.lookup(name)
            if found is not None and found[0].scope == scope:
                return True
        return False

    def __repr__(self) -> str:
        return f"Condition({self.text!r})"


def compile_condition(text: str, schema: Schema = INTERACTION_SCHEMA) -> Condition:
    """Parse and type-check ``text`` against ``schema``; raises :class:`ConditionError`."""
    return Condition(text, schema)
