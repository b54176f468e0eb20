"""What every step is built on: the document (:class:`Doc`), the step base class (:class:`Step`) with
its corpus-statistic protocol (:class:`CorpusStat`), the registry of step names and helpers the
families share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from lakesift.config import StrictModel
from udfs import kernels as K
from udfs.steps.units import DEFAULT_UNITS, TextUnits, get_units

# non-ASCII characters re.I matches with an ASCII letter, or whose str.lower() is ASCII or longer
# (tests/udfs/test_kernels.py checks the list on all of Unicode)
_RE_I_ASCII_TWINS = ("\u0130", "\u0131", "\u017f", "\u212a")


class Doc:
    """One document moving through a pipeline: its text, its metadata and cached text units.

    Words, lines and paragraphs come from the document's :class:`~udfs.steps.units.TextUnits`
    (``units``: an instance or a registered name; ``None`` is the ``default`` units). On the default
    units the word counts come from one pass of the compiled kernel when it is built (udfs.kernels),
    else from the Python definitions; on any other units from the units' own functions."""

    __slots__ = ("text", "url", "meta", "units", "_cache")

    def __init__(self, text: str, url: str | None = None, meta: dict[str, Any] | None = None,
                 units: TextUnits | str | None = None):
        self.text = text
        self.url = url or ""
        self.meta: dict[str, Any] = dict(meta or {})
        self.units: TextUnits = DEFAULT_UNITS if units is None else get_units(units)
        self._cache: dict[str, Any] = {}

    def use_units(self, units: TextUnits) -> None:
        """Count words in other units from now on (a routed pipeline's branch)."""
        if units is not self.units:
            self.units = units
            self._cache.clear()

    def set_text(self, new: str) -> None:
        if new != self.text:
            self.text = new
            self._cache.clear()

    def cached(self, key: str, fn: Callable[[str], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = fn(self.text)
        return self._cache[key]

    # the units most steps share
    @property
    def lines(self) -> list[str]:
        return self.cached("lines", self.units.lines)

    @property
    def paragraphs(self) -> list[str]:
        return self.cached("paragraphs", self.units.paragraphs)

    @property
    def lower(self) -> str:
        return self.cached("lower", str.lower)

    @property
    def folded(self) -> str | None:
        """``text.lower()`` when a search for ASCII literals in it is the same as a case-insensitive
        regex search (``re.I``) in the text: no character that ``re.I`` equates with an ASCII letter
        other than its own upper case (a property tests/udfs/test_kernels.py checks on all of Unicode)."""
        return self.cached("folded", lambda s: None if any(c in s for c in _RE_I_ASCII_TWINS) else self.lower)

    @property
    def has_blank_line(self) -> bool:
        """A non-empty line of whitespace only."""
        return self.cached("blank_line", lambda s: any(ln.isspace() for ln in s.split("\n")))

    @property
    def words(self) -> list[str]:
        """The units' ``words`` (default: ``text.split()``)."""
        return self.cached("split", self.units.words)

    split = words  # the name steps used before text units were pluggable

    @property
    def ngram_words(self) -> list[str]:
        """The units' ``ngram_words`` (default: UAX #29 words starting with an alphanumeric character)."""
        return self.cached("ngram_words", self.units.ngram_words)

    @property
    def compiled(self) -> bool:
        """Whether the word statistics come from the compiled kernel: built, and the default units."""
        return K.rules is not None and self.units.compiled

    def _stat(self, i: int) -> int:
        return self.cached("word_stats", K.rules.word_stats)[i]

    def ft_word_count(self, ignore_punctuation: bool = True) -> int:
        """Number of ``tokens`` (default: fastText words, alphanumeric-initial tokens, or all tokens), cached."""
        if self.compiled:
            return self._stat(1 if ignore_punctuation else 0)
        return self.cached("ft_word_count" if ignore_punctuation else "ft_token_count",
                           lambda s: self.units.token_count(s, ignore_punctuation))

    @property
    def ws_word_count(self) -> int:
        """``len(words)`` (default: ``len(text.split())``)."""
        return self._stat(2) if self.compiled else len(self.words)

    @property
    def ws_char_count(self) -> int:
        """Characters in the words, ``sum(map(len, words))``."""
        return self._stat(3) if self.compiled else sum(map(len, self.words))

    @property
    def non_alpha_word_count(self) -> int:
        """Words without an alphabetic character (``str.isalpha``)."""
        if self.compiled:
            return self._stat(4)
        return self.cached("non_alpha", self.units.non_alpha_word_count)

    @property
    def stop_word_count(self) -> int:
        """Words that lower-case to one of the units' stop words (with repeats; default: Gopher's English ones)."""
        if self.compiled:
            return self._stat(5)
        return sum(map(self.units.stop_words.__contains__, map(str.lower, self.words)))


@dataclass(frozen=True)
class CorpusStat:
    """A statistic of the whole corpus a step needs before it can decide: the ``quantile`` (0..1) of
    the metadata column ``column`` over every page reaching the step, to within ``relative_error``
    (the argument of Spark's ``DataFrame.approxQuantile``)."""

    column: str
    quantile: float
    relative_error: float


class Step:
    """Base class. Subclasses set ``name``, ``kind`` and ``Params`` and implement ``apply``."""

    name: ClassVar[str]
    kind: ClassVar[Literal["filter", "modifier", "enricher"]]

    class Params(StrictModel):
        pass

    def __init__(self, params: StrictModel):
        self.p = params

    def apply(self, doc: Doc) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def apply_batch(self, docs: list[Doc]) -> list[str | None]:
        """The step on a batch of documents (a model-backed step scores them in one call)."""
        return [self.apply(d) for d in docs]

    def columns(self) -> dict[str, str]:
        """Columns this step adds to the output tables: metadata key -> Spark SQL type."""
        return {}

    # A local file the step needs on every executor (a model), set by prepare() on the driver; the
    # Spark job ships it once and points this at the executor's copy.
    local_path: str | None = None

    def prepare(self) -> None:
        """Driver-side check before any Spark work (e.g. that a model can be fetched and loaded)."""

    def pinned_params(self) -> dict[str, Any]:
        """Parameters resolved on the driver (after prepare) that executors must use as well."""
        return {}

    # The corpus-statistic protocol. A step that needs a statistic of the whole corpus (a top-fraction
    # threshold) returns it from corpus_stat(); the pipeline starts a new segment at that step
    # (Pipeline.segments), the Spark job computes the statistic over the pages reaching it
    # (``approxQuantile(stat.column, [stat.quantile], stat.relative_error)``), calls resolve(value) on
    # the step in every task and logs describe_threshold(value). Plain Python callers compute it
    # themselves (e.g. ``numpy.quantile``) and call resolve() before apply().
    def corpus_stat(self) -> CorpusStat | None:
        """The statistic this step needs, or None (most steps)."""
        return None

    def needs_corpus_stat(self) -> bool:
        return self.corpus_stat() is not None

    def resolve(self, value: float) -> None:
        """Take the value of :meth:`corpus_stat` computed over the corpus."""
        raise TypeError(f"{self.name} needs no corpus statistic")

    def describe_threshold(self, value: float) -> str:
        """One line for logs: what the statistic is and the value it came to."""
        stat = self.corpus_stat()
        return f"quantile {stat.quantile:g} of {stat.column} -> threshold {value:.6g}"

    def reads(self) -> list[str]:
        """Metadata keys this step reads that may come from input columns (e.g. an existing score)."""
        return []


REGISTRY: dict[str, type[Step]] = {}


def register(cls: type[Step]) -> type[Step]:
    REGISTRY[cls.name] = cls
    return cls


def _modified(doc: Doc, new: str) -> str | None:
    """DCLM modifiers drop a page whose text becomes empty."""
    doc.set_text(new)
    return None if new else "empty_after_modification"


def _read_list(path: str) -> list[str]:
    """The entries of a list file in ``conf/`` (or any path): one a line, ``#`` comments and blank lines skipped."""
    from pathlib import Path

    from udfs import resources

    p = resources.resolve(path)
    return [ln.strip() for ln in Path(p).read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")]
