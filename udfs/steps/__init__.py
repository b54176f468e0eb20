"""Pipeline steps: filters (keep, or drop with a reason), modifiers (rewrite the text) and enrichers
(add values for later steps or columns). Plain Python on one document; no Spark.

Every step is a class registered under the name used in ``conf/pipelines/*.yaml`` (DCLM's mapper
names), with a strict parameter model: an unknown parameter or a wrong type fails at load time.
``apply(doc)`` returns ``None`` to keep the document, or a short reason string to drop it.

Semantics follow DCLM's mappers (mlfoundations/dclm, ``baselines/mappers/``): the docstring of each
step says what is counted and how the threshold compares, with DCLM-Baseline's value and its source.

The package, by family (datatrove-style):

* :mod:`~udfs.steps.base`: :class:`Doc`, :class:`Step`, :class:`CorpusStat`, :data:`REGISTRY`,
  :func:`register` and the helpers the families share;
* :mod:`~udfs.steps.units`: :class:`TextUnits`, how a language cuts a text into words, lines and
  paragraphs (``units:`` in a pipeline file; the ``default`` units are DCLM's English ones);
* :mod:`~udfs.steps.lines`: line modifiers (newlines, upper-case / digit / counter / short lines,
  banned substrings);
* :mod:`~udfs.steps.gopher`: Gopher's page filters and repetition rules;
* :mod:`~udfs.steps.refinedweb`: RefinedWeb's URL filters, URL removal, word counter and word removal ratio;
* :mod:`~udfs.steps.c4_fineweb`: C4's rules and bad words, FineWeb's rules;
* :mod:`~udfs.steps.language`: language identification and the language filter;
* :mod:`~udfs.steps.quality`: the fastText quality score and the keep rule on a score;
* :mod:`~udfs.steps.units_zh`: Chinese text units (``units: zh``: characters, jieba words) and
  character units for other unspaced scripts (``units: cjk``);
* :mod:`~udfs.steps.zh`: Chinese normalisation, traditional -> simplified, boilerplate lines and the
  character-level filters (length, CJK share, line length, repetition, punctuation, symbols, garble);
* :mod:`~udfs.steps.blacklist`, :mod:`~udfs.steps.pii`: the blacklist dictionary and PII masking.

Importing this package imports every family module below, so every ``@register`` has run.

Adding a step:

1. One class in the family module it belongs to (or a new module, imported below), decorated with
   ``@register``: ``name`` (the ``func:`` of the YAML), ``kind`` (``"filter"``, ``"modifier"`` or
   ``"enricher"``), a ``Params(StrictModel)`` with a default and a bound for each parameter, and
   ``apply(doc)`` returning ``None`` or a short reason (a modifier calls ``_modified(doc, new_text)``).
   Count words through the document (``doc.ft_word_count()``, ``doc.words``, ``doc.lines``,
   ``doc.units.words(line)`` …), never with ``str.split`` of its own, so that the step follows the
   pipeline's text units. A step needing a corpus-wide statistic returns a :class:`CorpusStat` from
   ``corpus_stat()`` and takes its value in ``resolve()``; one needing a model file implements
   ``prepare()`` (and sets ``local_path``); an enricher names its columns in ``columns()``.
2. A line in a pipeline file: ``- func: <name>`` with its parameters.
3. A test in ``tests/udfs/test_steps.py`` on documents just inside and just outside its threshold.
"""

from udfs.steps.base import _RE_I_ASCII_TWINS, REGISTRY, CorpusStat, Doc, Step, register
from udfs.steps.blacklist import Blacklist
from udfs.steps.c4_fineweb import C4BadWords, C4Quality, FineWebQuality
from udfs.steps.gopher import (
    AlphabeticWordRatio,
    BulletCount,
    EllipsisCount,
    GopherRepetition,
    PageLength,
    StopWord,
    SymbolRatio,
    WordLength,
    _ngram_fractions,
)
from udfs.steps.language import LanguageFilter, LanguageId
from udfs.steps.lines import (
    _COUNTER,
    CounterLine,
    LineLength,
    NewlineRemoval,
    NumericRatioLine,
    SubstringLine,
    UppercaseRatioLine,
)
from udfs.steps.pii import PiiMask
from udfs.steps.quality import FastTextQuality, QualityFilter
from udfs.steps.refinedweb import (
    _IPV4_HINT,
    UrlRemoval,
    UrlSubstring,
    WordCounter,
    WordRemovalRatio,
    _sub_in_tokens,
)
from udfs.steps.units import DEFAULT_UNITS, UNITS, TextUnits, WhitespaceUnits, get_units, register_units
from udfs.steps.units_zh import CharacterUnits, ChineseUnits
from udfs.steps.zh import (
    BoilerplateLine,
    CharNgramRepetition,
    CharRepetition,
    ChineseConvert,
    ChineseGarble,
    ChinesePunctuation,
    CjkRatio,
    MeanLineLength,
    SpecialCharRatio,
    TextNormalization,
)

__all__ = [
    "REGISTRY", "CorpusStat", "Doc", "Step", "register",
    "DEFAULT_UNITS", "UNITS", "TextUnits", "WhitespaceUnits", "get_units", "register_units",
    "CounterLine", "LineLength", "NewlineRemoval", "NumericRatioLine", "SubstringLine", "UppercaseRatioLine",
    "AlphabeticWordRatio", "BulletCount", "EllipsisCount", "GopherRepetition", "PageLength", "StopWord",
    "SymbolRatio", "WordLength",
    "UrlRemoval", "UrlSubstring", "WordCounter", "WordRemovalRatio",
    "C4BadWords", "C4Quality", "FineWebQuality",
    "LanguageFilter", "LanguageId",
    "FastTextQuality", "QualityFilter",
    "ChineseUnits", "CharacterUnits", "Blacklist", "PiiMask",
    "TextNormalization", "ChineseConvert", "BoilerplateLine", "CjkRatio", "MeanLineLength", "CharRepetition",
    "CharNgramRepetition", "ChinesePunctuation", "SpecialCharRatio", "ChineseGarble",
    # helpers the tests check against their definitions (kept importable from here)
    "_COUNTER", "_IPV4_HINT", "_RE_I_ASCII_TWINS", "_ngram_fractions", "_sub_in_tokens",
]
