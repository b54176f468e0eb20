"""Text units for Chinese and other scripts written without spaces between words.

``zh`` (:class:`ChineseUnits`, what ``conf/pipelines/zh_baseline.yaml`` selects with ``units: zh``):

* ``tokens``: every Han character is one token, a run of other letters / digits (a Latin word, a
  number) is one token, as in mixed Chinese-English technical text. Length and removal rules count
  these: ``page_length_filter`` (word), ``word_counter_enricher``, ``word_removal_ratio_filter`` (the
  5%-removed rule after the boilerplate-line modifier). With ``ignore_punctuation=False`` each other
  non-space character is a token too.
* ``ngram_words``: the same tokens: Gopher's repetition n-grams (``massive_web_repetition_filters``)
  run over characters.
* ``words``: jieba's segmentation (its own dictionary, 349,046 words, MIT, shipped in the wheel; the
  default "accurate" mode with its HMM for unknown words), whitespace and punctuation segments left
  out. The rules that need words use these: ``stop_word_filter`` (Chinese function words, below),
  ``word_length_filter`` / ``alphabetic_word_ratio_filter`` if a pipeline adds them, and
  ``zh_garble_filter`` (characters per word). jieba loads on first use, once per process (about 1 s).
* ``lines`` / ``paragraphs``: newline-separated, as in every language.

``cjk`` (:class:`CharacterUnits`): the same character tokens for any unsegmented script (Han, kana,
Thai, Lao, Khmer, Myanmar, Tibetan) and the tokens also as ``words``, with no segmenter: the units of
the FineWeb-2-style branch for Japanese, Thai and the like in ``conf/pipelines/multilingual.yaml``.
"""

from __future__ import annotations

import re
import threading

from udfs.steps.units import TextUnits, register_units

# Han ideographs: the URO, extension A, the compatibility block and the supplementary planes' B..I
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
# scripts written without spaces between words (each character is a unit)
UNSPACED = HAN + "\u3040-\u30ff\u31f0-\u31ff\u0e00-\u0e7f\u0e80-\u0eff\u1780-\u17ff\u1000-\u109f\u0f00-\u0fff"

HAN_CHAR = re.compile(f"[{HAN}]")


def _token_pattern(script: str, punctuation: bool) -> re.Pattern:
    # one unspaced character, or a run of other word characters (letters, digits, marks), or (optionally)
    # one character that is neither space nor word
    other = r"|[^\s\w]" if punctuation else ""
    return re.compile(rf"[{script}]|(?:(?![{script}])[^\W_])+{other}")


# Chinese function words (our own list of the commonest particles, pronouns, prepositions and
# conjunctions of modern written Chinese): simplified and traditional forms.
ZH_STOP_WORDS = frozenset("""
的 了 是 在 和 有 我 不 这 也 就 都 而 及 与 或 被 把 对 中 上 个 为 以 之 其 从 等 到 将 但 并 你 他 她
它 们 我们 你们 他们 一个 可以 没有 因为 所以 如果 这个 那个 这些 那些 已经 还 又 很 会 能 要 让 给 向 由
於 與 為 這 們 個 會 對 從 將 還 說 说 时 時 后 後 着 著 过 過 吗 嗎 呢 吧 啊 么 麼 此 该 該 每 各 则 則
""".split())


@register_units
class ChineseUnits(TextUnits):
    """Chinese: Han characters as tokens and n-gram units, jieba words as ``words`` (module docstring)."""

    name = "zh"
    stop_words = ZH_STOP_WORDS
    _tok = _token_pattern(HAN, False)
    _tok_all = _token_pattern(HAN, True)
    _lock = threading.Lock()

    def __init__(self):
        self._jieba = None

    def tokens(self, text: str, ignore_punctuation: bool = True) -> list[str]:
        return (self._tok if ignore_punctuation else self._tok_all).findall(text)

    def ngram_words(self, text: str) -> list[str]:
        return self._tok.findall(text)

    def segmenter(self):
        """jieba's default tokenizer, initialised once per process (thread-safe)."""
        if self._jieba is None:
            with self._lock:
                if self._jieba is None:
                    import logging

                    import jieba

                    jieba.setLogLevel(logging.WARNING)
                    jieba.initialize()
                    self._jieba = jieba.dt
        return self._jieba

    def words(self, text: str) -> list[str]:
        # jieba keeps spaces and punctuation as segments of their own: a word has a letter or digit
        return [w for w in self.segmenter().lcut(text) if _WORDISH.search(w)]


_WORDISH = re.compile(r"[^\W_]")


@register_units
class CharacterUnits(TextUnits):
    """Any script written without spaces: each character of an unspaced script is a token, a word and
    an n-gram unit; runs of other letters / digits are one unit (module docstring)."""

    name = "cjk"
    stop_words = frozenset()
    _tok = _token_pattern(UNSPACED, False)
    _tok_all = _token_pattern(UNSPACED, True)

    def tokens(self, text: str, ignore_punctuation: bool = True) -> list[str]:
        return (self._tok if ignore_punctuation else self._tok_all).findall(text)

    def words(self, text: str) -> list[str]:
        return self._tok.findall(text)

    def ngram_words(self, text: str) -> list[str]:
        return self._tok.findall(text)
