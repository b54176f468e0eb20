"""Text units: how a document is cut into lines, paragraphs and words, per language.

Steps never split a text themselves to count words: they ask the document (:class:`udfs.steps.Doc`),
and the document asks its :class:`TextUnits`, chosen per pipeline (the optional top-level key
``units: <name>`` of ``conf/pipelines/*.yaml``, default ``default``) or per document
(``Doc(text, units="default")``). Each function is one meaning the steps use; the ``default`` units
(:class:`WhitespaceUnits`, DCLM's English definitions, what every shipped pipeline uses) in brackets:

* ``lines``: page_length_filter (line), bullet / ellipsis counts, FineWeb, Gopher repetition
  (``\\n``-separated segments, stripped, empty ones dropped);
* ``paragraphs``: page_length_filter (paragraph), Gopher repetition (the same on ``\\n\\n``);
* ``tokens``: page_length_filter (word), word_counter_enricher, word_removal_ratio_filter (fastText's
  tokens; with ``ignore_punctuation`` only those starting with an alphanumeric character);
* ``words``: mean word length, symbol / non-alphabetic / stop-word ratios, FineWeb's newline ratio and
  the words of one line in line_length_modifier, substring_line_modifier and C4's short-line rule
  (``str.split()``);
* ``ngram_words``: Gopher's n-gram repetition (UAX #29 words starting with an alphanumeric character);
* ``stop_words``: stop_word_filter, against the lower-cased ``words`` (Gopher's 8 English stop words).

The C kernels (:mod:`udfs.kernels`) implement the ``default`` units only: a document on other units
takes the Python definitions below (``compiled`` is False for every class but the default one, also
for a subclass of it, unless the subclass sets it itself).

Adding units for a language (the next issue adds Chinese this way):

1. One class, e.g. in ``udfs/steps/units_zh.py``::

       @register_units
       class ChineseCharacters(TextUnits):
           '''Chinese text: each Han character is a word (CJK runs have no spaces to split on).'''

           name = "zh_char"               # the value of a pipeline's ``units:`` key
           stop_words = frozenset({"的", "了", "和", "是", "在"})

           def tokens(self, text, ignore_punctuation=True): ...   # what page length counts
           def words(self, text): ...                              # word statistics, words of a line
           def ngram_words(self, text): ...                        # Gopher n-grams

   ``lines`` / ``paragraphs`` are inherited (newline-separated, as in every language) and can be
   overridden; ``token_count`` and ``non_alpha_word_count`` have generic definitions over ``tokens`` /
   ``words`` (override them only for speed). A segmenter-based class (jieba, pkuseg) loads its model
   lazily on first use and keeps it on the instance: one instance per process serves every document.
   Every function takes the text (a whole page or one line) and returns a plain ``list`` of ``str``.
2. Import the module in ``udfs/steps/__init__.py`` (so ``@register_units`` runs on every executor).
3. Select it: ``units: zh_char`` at the top of the pipeline file; steps whose rules are English by
   nature (C4's terminal punctuation, the stop-word list of a pipeline) may need their own parameters.
4. A test in ``tests/udfs/test_steps.py``: each word-based step (page_length_filter,
   line_length_modifier, massive_web_repetition_filters …) on a short text in that language, just
   inside and just outside its threshold, as ``test_registered_units_change_what_word_based_steps_count``
   does with a toy class.
"""

from __future__ import annotations

from typing import ClassVar

from udfs import text as T


class TextUnits:
    """How one language cuts a text into units; see the module docstring for each function's meaning.

    Subclasses set ``name`` and ``stop_words`` and implement ``tokens``, ``words`` and ``ngram_words``.
    Instances must be stateless apart from lazily loaded resources (one serves all documents)."""

    name: ClassVar[str]
    stop_words: ClassVar[frozenset[str]]
    # True only where udfs.kernels.rules computes these exact units (the default, whitespace units)
    compiled: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "compiled" not in cls.__dict__:  # a subclass of the default units changes what the kernels count
            cls.compiled = False

    def lines(self, text: str) -> list[str]:
        """DCLM lines: split on ``\\n``, strip, drop empty."""
        return T.lines(text)

    def paragraphs(self, text: str) -> list[str]:
        """DCLM paragraphs: split on ``\\n\\n``, strip, drop empty."""
        return T.paragraphs(text)

    def tokens(self, text: str, ignore_punctuation: bool = True) -> list[str]:
        """The words page length and word removal count (with ``ignore_punctuation``: only those
        starting with an alphanumeric character)."""
        raise NotImplementedError

    def token_count(self, text: str, ignore_punctuation: bool = True) -> int:
        return len(self.tokens(text, ignore_punctuation))

    def words(self, text: str) -> list[str]:
        """The words of word statistics (mean length, ratios, stop words) and of a line's word count."""
        raise NotImplementedError

    def non_alpha_word_count(self, text: str) -> int:
        """Number of ``words`` without an alphabetic character (``str.isalpha``)."""
        return sum(1 for w in self.words(text) if not any(map(str.isalpha, w)))

    def ngram_words(self, text: str) -> list[str]:
        """The words Gopher's repetition n-grams are made of."""
        raise NotImplementedError


UNITS: dict[str, type[TextUnits]] = {}
_INSTANCES: dict[type[TextUnits], TextUnits] = {}


def register_units(cls: type[TextUnits]) -> type[TextUnits]:
    """Class decorator: make ``cls`` selectable as ``units: <cls.name>``."""
    missing = [f for f in ("tokens", "words", "ngram_words") if getattr(cls, f) is getattr(TextUnits, f)]
    if not isinstance(cls.__dict__.get("name"), str) or missing \
            or not isinstance(getattr(cls, "stop_words", None), frozenset):
        raise TypeError(f"{cls.__name__}: text units need their own name, a frozenset of stop_words and "
                        f"tokens / words / ngram_words{' (missing: ' + ', '.join(missing) + ')' if missing else ''}")
    UNITS[cls.name] = cls
    return cls


def get_units(units: TextUnits | str | None = None) -> TextUnits:
    """The units instance of a registered name (``None``: ``default``), one per class and process; an
    instance is returned as it is. An unknown name is a ``ValueError`` listing the known ones."""
    if isinstance(units, TextUnits):
        return units
    name = "default" if units is None else units
    cls = UNITS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown text units {name!r}; known: {', '.join(sorted(UNITS))}")
    inst = _INSTANCES.get(cls)
    if inst is None:
        inst = _INSTANCES[cls] = cls()
    return inst


@register_units
class WhitespaceUnits(TextUnits):
    """DCLM's definitions (:mod:`udfs.text`), what every shipped pipeline uses: fastText tokens,
    whitespace words, UAX #29 words and Gopher's English stop words. Compiled: the word statistics and
    the n-gram rules come from one pass of the C kernel when it is built."""

    name = "default"
    stop_words = T.STOP_WORDS
    compiled = True

    # the functions themselves (no Python frame per call): line modifiers call ``words`` on every line
    tokens = staticmethod(T.fasttext_words)
    token_count = staticmethod(T.fasttext_word_count)
    words = staticmethod(str.split)
    ngram_words = staticmethod(T.uax29_words)

    def non_alpha_word_count(self, text: str) -> int:
        return len(T.NON_ALPHA_WORD.findall(text))


DEFAULT_UNITS: TextUnits = get_units("default")
