"""The bounded Jinja2 sandbox templates render in: a hostile template cannot make the dispatcher do unbounded work.

A template is short (5,000 characters) but its values are the agency's, so
what it costs is only known while it renders. Every render gets a budget,
counted as it runs and refused (LimitExceeded) the moment one is spent:

- output: the message is consumed as a stream and counted chunk by chunk;
  rendering stops as soon as it passes MAX_OUTPUT (never render-then-measure);
  every `{{ }}` also counts towards MAX_PRODUCED, so text built in `set`
  blocks, macros or filter blocks is bounded too;
- loop iterations over all loops together (MAX_ITERATIONS): each `for` is
  compiled with its iterable wrapped in a counting generator; recursive loops
  are refused;
- calls (macros, `caller()`, methods, `loop.cycle`...) (MAX_CALLS), and a
  wall-clock deadline checked at every counted step;
- allocation: `*` and `+` on strings/lists, `~`, `%`, `str.format` and the
  filters that pad or repeat (`center`, `indent`, `wordwrap`, `format`,
  `replace`, `join`, `batch`, `slice`) check their result size or width
  before building it; `range` is capped at MAX_ITERATIONS; string and number
  methods are limited to a list that cannot allocate much (no `ljust`,
  `zfill`, `to_bytes`...); lists and dicts cannot be modified
  (ImmutableSandboxedEnvironment); `**` and `lipsum` are gone.
"""

from __future__ import annotations

import contextvars
import re
import string
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace
from jinja2.visitor import NodeTransformer

MAX_OUTPUT = 20_000       # characters of one message (subject and body together)
MAX_PRODUCED = 4 * MAX_OUTPUT  # characters all `{{ }}` of a render may produce, kept or not
MAX_VALUE = MAX_OUTPUT    # the longest string or list one expression may build
MAX_ITERATIONS = 1_000    # loop items in one render, all loops together
MAX_CALLS = 1_000         # macro, method and helper calls in one render
MAX_WIDTH = 200           # widths, paddings and counts a filter or format spec may ask for
MAX_RENDER_S = 2.0        # wall clock of one render (a legitimate one takes microseconds)

_SAFE_METHODS: dict[type, frozenset[str]] = {
    str: frozenset({"upper", "lower", "title", "capitalize", "casefold", "swapcase", "strip", "lstrip", "rstrip",
                    "startswith", "endswith", "split", "rsplit", "splitlines", "partition", "rpartition", "count", "find",
                    "rfind", "index", "rindex", "removeprefix", "removesuffix", "format", "isalpha", "isdigit", "isalnum",
                    "isdecimal", "isnumeric", "isspace", "islower", "isupper", "istitle"}),
    dict: frozenset({"get", "keys", "values", "items"}),
    list: frozenset({"index", "count"}),
    tuple: frozenset({"index", "count"}),
}
_NUMBERS = (int, float, complex, bool)


class LimitExceeded(SecurityError):
    """A render went over one of its bounds; the message names which."""


class _Budget:
    def __init__(self) -> None:
        self.iterations = self.calls = self.produced = 0
        self.deadline = time.monotonic() + MAX_RENDER_S

    def _clock(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"rendering took longer than {MAX_RENDER_S:g} s")

    def iterate(self) -> None:
        self.iterations += 1
        if self.iterations > MAX_ITERATIONS:
            raise LimitExceeded(f"more than {MAX_ITERATIONS} loop iterations")
        self._clock()

    def call(self) -> None:
        self.calls += 1
        if self.calls > MAX_CALLS:
            raise LimitExceeded(f"more than {MAX_CALLS} calls")
        self._clock()

    def produce(self, size: int) -> None:
        self.produced += size
        if self.produced > MAX_PRODUCED:
            raise LimitExceeded(f"more than {MAX_PRODUCED} characters produced")
        self._clock()


_BUDGET: contextvars.ContextVar[_Budget] = contextvars.ContextVar("notify_template_budget")


def _budget() -> _Budget:
    try:
        return _BUDGET.get()
    except LookupError:  # only render_bounded() renders; anything else is refused rather than run unbounded
        raise LimitExceeded("rendering outside a budget") from None


def _sized(value: Any) -> Any:
    if isinstance(value, (str, list, tuple)) and len(value) > MAX_VALUE:
        raise LimitExceeded(f"a value longer than {MAX_VALUE}")
    return value


def _width(value: Any, what: str) -> None:
    size = len(value) if isinstance(value, str) else value
    if isinstance(size, (int, float)) and size > MAX_WIDTH:
        raise LimitExceeded(f"{what} wider than {MAX_WIDTH}")


_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_printf(fmt: str) -> None:
    for match in _PRINTF.finditer(fmt):
        for part in match.groups():
            if part == "*" or (part and int(part) > MAX_WIDTH):
                raise LimitExceeded(f"format widths are at most {MAX_WIDTH}")


def _check_format(fmt: str) -> None:
    for _, _, spec, _ in string.Formatter().parse(fmt):
        if spec and ("{" in spec or any(int(n) > MAX_WIDTH for n in re.findall(r"\d+", spec))):
            raise LimitExceeded(f"format widths are at most {MAX_WIDTH}")


# -- the filters that can allocate, bounded before they build anything ------------------------------

def _center(value: Any, width: int = 80) -> str:
    _width(width, "center")
    return JINJA_FILTERS["center"](value, width)


def _indent(value: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    _width(width, "indent")
    pad = len(width) if isinstance(width, str) else int(width)
    if len(str(value)) + (str(value).count("\n") + 1) * max(pad, 0) > MAX_VALUE:
        raise LimitExceeded(f"an indented text longer than {MAX_VALUE}")
    return JINJA_FILTERS["indent"](value, width, first, blank)


def _wordwrap(environment, s: str, width: int = 79, break_long_words: bool = True, wrapstring: str | None = None,
              break_on_hyphens: bool = True) -> str:
    if width < 1:
        raise LimitExceeded("wordwrap width must be positive")
    _width(wrapstring or "", "wordwrap's wrapstring")
    return _sized(JINJA_FILTERS["wordwrap"](environment, s, width, break_long_words, wrapstring, break_on_hyphens))


_wordwrap.jinja_pass_arg = JINJA_FILTERS["wordwrap"].jinja_pass_arg  # type: ignore[attr-defined]


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    _check_printf(str(value))
    return _sized(JINJA_FILTERS["format"](value, *args, **kwargs))


def _replace(eval_ctx, s: str, old: str, new: str, count: int | None = None) -> str:
    text = str(s)
    hits = (len(text) + 1 if not old else text.count(str(old))) if count is None else min(int(count), len(text) + 1)
    if len(text) + max(hits, 0) * len(str(new)) > MAX_VALUE:
        raise LimitExceeded(f"a replacement longer than {MAX_VALUE}")
    return JINJA_FILTERS["replace"](eval_ctx, s, old, new, count)


_replace.jinja_pass_arg = JINJA_FILTERS["replace"].jinja_pass_arg  # type: ignore[attr-defined]


def _join(eval_ctx, value: Iterable[Any], d: str = "", attribute: str | int | None = None) -> str:
    items = list(value)
    if sum(len(str(x)) for x in _sized(items)) + len(str(d)) * len(items) > MAX_VALUE:
        raise LimitExceeded(f"a joined text longer than {MAX_VALUE}")
    return JINJA_FILTERS["join"](eval_ctx, items, d, attribute)


_join.jinja_pass_arg = JINJA_FILTERS["join"].jinja_pass_arg  # type: ignore[attr-defined]


def _batch(value: Iterable[Any], linecount: int, fill_with: Any = None):
    _width(linecount, "batch")
    return JINJA_FILTERS["batch"](value, linecount, fill_with)


def _slice(value: Iterable[Any], slices: int, fill_with: Any = None):
    _width(slices, "slice")
    return JINJA_FILTERS["slice"](value, slices, fill_with)


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_ITERATIONS:
        raise LimitExceeded(f"a range longer than {MAX_ITERATIONS}")
    return numbers


def _bounded_iter(value: Iterable[Any]) -> Iterator[Any]:
    budget = _budget()
    for item in value:
        budget.iterate()
        yield item


def _bounded_str(value: Any) -> Any:
    return _sized(value)


# Plain text: no escaping filters (Markup would bring its own string methods); no pprint, urlize or xmlattr.
_KEPT_FILTERS = ("abs", "attr", "capitalize", "count", "d", "default", "dictsort", "filesizeformat", "first",
                 "float", "groupby", "int", "items", "last", "length", "list", "lower", "map", "max", "min",
                 "reject", "rejectattr", "reverse", "round", "select", "selectattr", "sort", "string", "striptags",
                 "sum", "title", "tojson", "trim", "truncate", "unique", "upper", "urlencode", "wordcount")
FILTERS = {name: JINJA_FILTERS[name] for name in _KEPT_FILTERS} | {
    "center": _center, "indent": _indent, "wordwrap": _wordwrap, "format": _format, "replace": _replace, "join": _join,
    "batch": _batch, "slice": _slice,
    # Inserted by the compiler below, not meant for authors (harmless if they use them).
    "_bounded_iter": _bounded_iter, "_bounded_str": _bounded_str,
}


class _Bounds(NodeTransformer):
    """Rewrites a parsed template: every loop iterates through the budget, every `~` concatenation is size-checked."""

    def visit_For(self, node: nodes.For) -> nodes.For:
        if node.recursive:
            raise LimitExceeded("recursive loops are not allowed")
        node = self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "_bounded_iter", [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        return nodes.Filter(self.generic_visit(node), "_bounded_str", [], [], None, None, lineno=node.lineno)


class _BoundedCodeGenerator(CodeGenerator):
    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        super().visit_Template(_Bounds().visit(node), frame)


def _finalize(value: Any) -> Any:
    _budget().produce(len(str(value)))
    return value


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's sandbox (no attribute tricks, no mutation of lists and dicts) with a budget on every render."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"**", "*", "+", "%"})

    def __init__(self) -> None:
        # Plain-text messages: no autoescaping; StrictUndefined stops silent gaps; no constant folding at compile time.
        super().__init__(undefined=jinja2.StrictUndefined, autoescape=False, optimized=False, finalize=_finalize)
        self.filters = dict(FILTERS)
        self.globals = {"range": _range, "dict": dict, "namespace": Namespace, "cycler": Cycler, "joiner": Joiner}

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if isinstance(obj, Namespace):
            return True  # {% set ns.x = ... %}: its attributes are the template's own values
        if isinstance(obj, _NUMBERS):
            return attr in ("real", "imag")  # no methods on numbers (to_bytes(10**9) allocates)
        for kind, methods in _SAFE_METHODS.items():
            if isinstance(obj, kind):
                return attr in methods
        return True

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            raise SecurityError("the power operator is not allowed in templates")
        sequences = (str, list, tuple)
        if operator == "*":
            if isinstance(left, sequences) or isinstance(right, sequences):
                times = right if isinstance(right, int) else left if isinstance(left, int) else 0
                size = len(left) if isinstance(left, sequences) else len(right)
                if size * max(times, 0) > MAX_VALUE:
                    raise LimitExceeded(f"a repetition longer than {MAX_VALUE}")
            elif isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > 256:
                raise LimitExceeded("a number too large")
        elif operator == "+" and isinstance(left, sequences) and isinstance(right, sequences):
            if len(left) + len(right) > MAX_VALUE:
                raise LimitExceeded(f"a concatenation longer than {MAX_VALUE}")
        elif operator == "%" and isinstance(left, str):
            _check_printf(left)
        return _sized(super().call_binop(context, operator, left, right))

    def call(__self, __context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's signature)
        _budget().call()
        inner = getattr(__obj, "__wrapped__", __obj)
        if isinstance(getattr(inner, "__self__", None), str) and getattr(inner, "__name__", "") in ("format", "format_map"):
            _check_format(inner.__self__)
        return _sized(super().call(__context, __obj, *args, **kwargs))


def render_bounded(parts: Sequence[jinja2.Template], values: dict[str, Any], max_chars: int = MAX_OUTPUT) -> list[str]:
    """The rendered texts (subject, body) under one budget, consumed as streams: LimitExceeded as soon as they
    pass max_chars together or any other bound is spent."""
    token = _BUDGET.set(_Budget())
    size = 0
    try:
        texts: list[str] = []
        for template in parts:
            stream = template.generate(values)
            try:
                chunks: list[str] = []
                for chunk in stream:
                    size += len(chunk)
                    if size > max_chars:
                        raise LimitExceeded(f"the message would be longer than {max_chars} characters")
                    chunks.append(chunk)
            finally:
                stream.close()
            texts.append("".join(chunks))
        return texts
    finally:
        _BUDGET.reset(token)
