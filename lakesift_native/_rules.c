/* Compiled kernels for per-document rules of udfs.steps (optional: udfs.kernels falls back to Python).
 *
 * word_stats(text) -> (ft_tokens, ft_alnum_tokens, ws_words, ws_chars, ws_non_alpha, stop_words)
 *     One pass each over the text for the counts the Gopher quality rules need:
 *     fastText tokens (separated by " \n\t\v\f\r\0") and those whose first character is alphanumeric
 *     (str.isalnum); str.split() words, their total length in code points, those without any
 *     alphabetic character (str.isalpha) and those that lower-case to one of Gopher's stop words.
 *
 * ngram_repetition(words_or_text, limits) -> n of the first failing rule, 0 when all pass,
 *                                             -1 when a text is outside the fast path
 *     Gopher's n-gram repetition rules over words given as a list of str, or over the UAX #29 words
 *     of a text made only of ASCII, Latin-1 letters and a few Word_Break=Other symbols (the fast path
 *     of udfs.text.uax29_words, same word rules). ``limits`` is a sequence of (n, max_share) pairs,
 *     checked in increasing n. n-grams are identified exactly (hashes are checked by comparing the
 *     words), not by hash alone.
 *
 * The Python definitions these must equal are in udfs/text.py and udfs/steps/; tests/udfs/
 * test_kernels.py compares both on fuzzed and real texts.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------------ word statistics */

static inline int is_ft_space(Py_UCS4 c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == 0;
}

static const char *const STOP_WORDS[] = {"the", "be", "to", "of", "and", "that", "have", "with"};

static int is_stop(const char *w, Py_ssize_t len)
{
    for (size_t k = 0; k < sizeof(STOP_WORDS) / sizeof(STOP_WORDS[0]); k++) {
        if ((Py_ssize_t)strlen(STOP_WORDS[k]) == len && memcmp(STOP_WORDS[k], w, (size_t)len) == 0)
            return 1;
    }
    return 0;
}

static PyObject *word_stats(PyObject *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "word_stats: expected str");
        return NULL;
    }
    const Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    long long ft_tokens = 0, ft_alnum = 0, ws_words = 0, ws_chars = 0, non_alpha = 0, stop = 0;

    int in_token = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (is_ft_space(c)) {
            in_token = 0;
        } else if (!in_token) {
            in_token = 1;
            ft_tokens++;
            if (Py_UNICODE_ISALNUM(c))
                ft_alnum++;
        }
    }

    Py_ssize_t i = 0;
    while (i < n) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (Py_UNICODE_ISSPACE(c)) {
            i++;
            continue;
        }
        const Py_ssize_t start = i;
        int has_alpha = 0, ascii_letters = 1;
        char low[4];
        for (; i < n; i++) {
            c = PyUnicode_READ(kind, data, i);
            if (Py_UNICODE_ISSPACE(c))
                break;
            if (!has_alpha && Py_UNICODE_ISALPHA(c))
                has_alpha = 1;
            if (i - start < 4) {
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
                    low[i - start] = (char)(c | 0x20);
                else
                    ascii_letters = 0;
            }
        }
        const Py_ssize_t len = i - start;
        ws_words++;
        ws_chars += len;
        if (!has_alpha)
            non_alpha++;
        /* Only ASCII letters lower-case to ASCII letters in the stop words (checked exhaustively by
           the tests: no other code point's str.lower() yields one), so a stop word is a 2..4-letter
           ASCII word, compared case-insensitively. */
        if (len >= 2 && len <= 4 && ascii_letters && is_stop(low, len))
            stop++;
    }
    return Py_BuildValue("(LLLLLL)", ft_tokens, ft_alnum, ws_words, ws_chars, non_alpha, stop);
}

/* ------------------------------------------------------------------------------ line modifiers */

static int append_substring(PyObject *list, PyObject *text, Py_ssize_t a, Py_ssize_t b)
{
    PyObject *sub = PyUnicode_Substring(text, a, b);
    if (!sub)
        return -1;
    int rc = PyList_Append(list, sub);
    Py_DECREF(sub);
    return rc;
}

/* drop_lines_by_char_share(text, counted, max_share) -> str
 *     "\n".join(ln for ln in text.split("\n") if not ln or share(ln) <= max_share).strip(), where
 *     share(ln) = sum(map(str.isupper, ln)) / len(ln) for counted == "upper", str.isdigit for "digit".
 *     Without a dropped line that is text.strip() (the same object when there is nothing to strip). */
static PyObject *drop_lines_by_char_share(PyObject *self, PyObject *args)
{
    PyObject *text;
    const char *counted;
    double max_share;
    if (!PyArg_ParseTuple(args, "Usd:drop_lines_by_char_share", &text, &counted, &max_share))
        return NULL;
    int upper;
    if (strcmp(counted, "upper") == 0)
        upper = 1;
    else if (strcmp(counted, "digit") == 0)
        upper = 0;
    else
        return PyErr_Format(PyExc_ValueError, "drop_lines_by_char_share: counted must be 'upper' or 'digit'");
    const Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);

    PyObject *kept = NULL; /* list of kept lines, made at the first dropped line */
    Py_ssize_t start = 0, n_lines = 0;
    for (Py_ssize_t i = 0; i <= n; i++) {
        if (i < n && PyUnicode_READ(kind, data, i) != '\n')
            continue;
        const Py_ssize_t len = i - start;
        int keep = 1;
        if (len > 0) {
            Py_ssize_t cnt = 0;
            for (Py_ssize_t k = start; k < i; k++) {
                Py_UCS4 c = PyUnicode_READ(kind, data, k);
                cnt += upper ? (Py_UNICODE_ISUPPER(c) != 0) : (Py_UNICODE_ISDIGIT(c) != 0);
            }
            keep = (double)cnt / (double)len <= max_share;
        }
        if (!keep && kept == NULL) {
            /* first drop: the lines before this one are all kept, and they are text[0:start-1] */
            kept = PyList_New(0);
            if (!kept || (n_lines > 0 && append_substring(kept, text, 0, start - 1) < 0)) {
                Py_XDECREF(kept);
                return NULL;
            }
        } else if (keep && kept != NULL && append_substring(kept, text, start, i) < 0) {
            Py_DECREF(kept);
            return NULL;
        }
        n_lines++;
        start = i + 1;
    }
    PyObject *joined;
    if (kept == NULL) {
        joined = text;
        Py_INCREF(joined);
    } else {
        PyObject *sep = PyUnicode_FromOrdinal('\n');
        joined = sep ? PyUnicode_Join(sep, kept) : NULL;
        Py_XDECREF(sep);
        Py_DECREF(kept);
        if (!joined)
            return NULL;
    }
    PyObject *out = PyObject_CallMethod(joined, "strip", NULL);
    Py_DECREF(joined);
    return out;
}

/* -------------------------------------------------------------------------------- n-gram rules */

typedef struct {
    const char *p; /* first byte */
    Py_ssize_t len; /* code points */
    int kind;       /* bytes per code point; equal str objects have equal kinds */
} Word;

static inline uint64_t hash_bytes(const char *p, size_t nbytes, int kind)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)kind;
    for (size_t k = 0; k < nbytes; k++) {
        h ^= (unsigned char)p[k];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static inline int word_eq(const Word *a, const Word *b)
{
    return a->len == b->len && a->kind == b->kind && memcmp(a->p, b->p, (size_t)a->len * a->kind) == 0;
}

static size_t table_size(Py_ssize_t m)
{
    size_t cap = 16;
    while (cap < (size_t)m * 2)
        cap <<= 1;
    return cap;
}

/* The first n (increasing) whose rule fails, 0 if none; -2 on memory error. */
static int ngram_rules(const Word *w, Py_ssize_t nw, const double *limit, const int *checked, int max_n)
{
    long long total = 0;
    for (Py_ssize_t i = 0; i < nw; i++)
        total += w[i].len;
    if (total == 0 || nw == 0)
        return 0;

    int result = 0;
    size_t cap = table_size(nw);
    int32_t *ids = PyMem_Malloc(sizeof(int32_t) * nw);
    long long *cs = PyMem_Malloc(sizeof(long long) * (nw + 1));
    uint64_t *h = PyMem_Malloc(sizeof(uint64_t) * nw);
    int64_t *slot_rep = PyMem_Malloc(sizeof(int64_t) * cap); /* representative window, -1 empty */
    uint64_t *slot_hash = PyMem_Malloc(sizeof(uint64_t) * cap);
    int32_t *slot_count = PyMem_Malloc(sizeof(int32_t) * cap);
    int64_t *grp = PyMem_Malloc(sizeof(int64_t) * nw);
    long long *cover = PyMem_Malloc(sizeof(long long) * (nw + 1));
    if (!ids || !cs || !h || !slot_rep || !slot_hash || !slot_count || !grp || !cover) {
        result = -2;
        goto done;
    }

    /* exact word ids */
    const size_t mask = cap - 1;
    for (size_t s = 0; s < cap; s++)
        slot_rep[s] = -1;
    int32_t next_id = 0;
    cs[0] = 0;
    for (Py_ssize_t i = 0; i < nw; i++) {
        cs[i + 1] = cs[i] + w[i].len;
        uint64_t hv = hash_bytes(w[i].p, (size_t)w[i].len * w[i].kind, w[i].kind);
        size_t s = hv & mask;
        for (;;) {
            if (slot_rep[s] < 0) {
                slot_rep[s] = i;
                slot_hash[s] = hv;
                slot_count[s] = next_id;
                ids[i] = next_id++;
                break;
            }
            if (slot_hash[s] == hv && word_eq(&w[slot_rep[s]], &w[i])) {
                ids[i] = slot_count[s];
                break;
            }
            s = (s + 1) & mask;
        }
    }

    const uint64_t mult = 0x9E3779B97F4A7C15ULL;
    for (Py_ssize_t i = 0; i < nw; i++)
        h[i] = (uint64_t)ids[i] * mult + 1;
    for (int n = 2; n <= max_n; n++) {
        const Py_ssize_t m = nw - n + 1;
        if (m <= 0)
            break;
        for (Py_ssize_t i = 0; i < m; i++) /* window [i, i+n) from window [i, i+n-1) */
            h[i] = h[i] * mult + (uint64_t)ids[i + n - 1] + (uint64_t)n;
        if (!checked[n])
            continue;
        for (size_t s = 0; s < cap; s++)
            slot_rep[s] = -1;
        int32_t top = 0;
        for (Py_ssize_t i = 0; i < m; i++) {
            uint64_t hv = h[i] ^ (h[i] >> 31);
            size_t s = hv & mask;
            for (;;) {
                if (slot_rep[s] < 0) {
                    slot_rep[s] = i;
                    slot_hash[s] = h[i];
                    slot_count[s] = 1;
                    break;
                }
                if (slot_hash[s] == h[i] &&
                    memcmp(&ids[slot_rep[s]], &ids[i], sizeof(int32_t) * (size_t)n) == 0) {
                    slot_count[s]++;
                    break;
                }
                s = (s + 1) & mask;
            }
            grp[i] = (int64_t)s;
            if (slot_count[s] > top)
                top = slot_count[s];
        }
        if (top == 1)
            break; /* no n-gram repeats, so no longer one can: every remaining rule passes */
        double share;
        if (n <= 4) {
            /* characters of the most common n-gram (the longest among equally common) times its count */
            long long best = 0;
            for (Py_ssize_t i = 0; i < m; i++) {
                if (slot_count[grp[i]] == top && cs[i + n] - cs[i] > best)
                    best = cs[i + n] - cs[i];
            }
            share = (double)(best * top) / (double)total;
        } else {
            /* characters of all words covered by an n-gram occurring more than once */
            memset(cover, 0, sizeof(long long) * (nw + 1));
            for (Py_ssize_t i = 0; i < m; i++) {
                if (slot_count[grp[i]] > 1) {
                    cover[i] += 1;
                    cover[i + n] -= 1;
                }
            }
            long long run = 0, chars = 0;
            for (Py_ssize_t i = 0; i < nw; i++) {
                run += cover[i];
                if (run > 0)
                    chars += w[i].len;
            }
            share = (double)chars / (double)total;
        }
        if (share > limit[n]) {
            result = n;
            break;
        }
    }

done:
    PyMem_Free(ids);
    PyMem_Free(cs);
    PyMem_Free(h);
    PyMem_Free(slot_rep);
    PyMem_Free(slot_hash);
    PyMem_Free(slot_count);
    PyMem_Free(grp);
    PyMem_Free(cover);
    return result;
}

/* The fast path of udfs.text.uax29_words: which code points it accepts and what they are. */
static inline int is_latin_letter(Py_UCS4 c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= 0xC0 && c <= 0xD6) ||
           (c >= 0xD8 && c <= 0xF6) || (c >= 0xF8 && c <= 0xFF);
}

static inline int is_digit09(Py_UCS4 c) { return c >= '0' && c <= '9'; }

static inline int is_word_char(Py_UCS4 c) { return is_latin_letter(c) || is_digit09(c) || c == '_'; }

static int fast_safe(Py_UCS4 c)
{
    if (c < 0x80 || is_latin_letter(c))
        return 1;
    switch (c) {
    case 0xA0: case 0xA1: case 0xA3: case 0xA7: case 0xA9: case 0xAB: case 0xAE: case 0xB0: case 0xB6:
    case 0xBB: case 0xBF: case 0xD7: case 0xF7:
    case 0x2013: case 0x2014: case 0x2018: case 0x2019: case 0x201A: case 0x201C: case 0x201D:
    case 0x201E: case 0x2020: case 0x2022: case 0x2026: case 0x2032: case 0x2033: case 0x20AC:
    case 0x2122: case 0x2190: case 0x2191: case 0x2192: case 0x2193:
        return 1;
    default:
        return 0;
    }
}

static inline int joins_letters(Py_UCS4 c) /* MidLetter, MidNumLet, Single_Quote (WB6/7) */
{
    return c == ':' || c == '.' || c == '\'' || c == 0x2018 || c == 0x2019;
}

static inline int joins_digits(Py_UCS4 c) /* MidNum, MidNumLet, Single_Quote (WB11/12) */
{
    return c == '.' || c == ',' || c == ';' || c == '\'' || c == 0x2018 || c == 0x2019;
}

/* Words of a fast-path text into *out (allocated); -1 when the text is outside the fast path. */
static Py_ssize_t fast_words(PyObject *text, Word **out)
{
    const Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const int kind = PyUnicode_KIND(text);
    const char *data = PyUnicode_DATA(text);
    if (!PyUnicode_IS_ASCII(text)) {
        for (Py_ssize_t i = 0; i < n; i++) {
            if (!fast_safe(PyUnicode_READ(kind, data, i)))
                return -1;
        }
    }
    Py_ssize_t cap = 64, nw = 0;
    Word *w = PyMem_Malloc(sizeof(Word) * cap);
    if (!w)
        return -2;
    Py_ssize_t i = 0;
    while (i < n) {
        if (!is_word_char(PyUnicode_READ(kind, data, i))) {
            i++;
            continue;
        }
        const Py_ssize_t start = i;
        for (;;) {
            while (i < n && is_word_char(PyUnicode_READ(kind, data, i)))
                i++;
            if (i + 1 < n) {
                Py_UCS4 sep = PyUnicode_READ(kind, data, i);
                Py_UCS4 prev = PyUnicode_READ(kind, data, i - 1), next = PyUnicode_READ(kind, data, i + 1);
                if ((joins_letters(sep) && is_latin_letter(prev) && is_latin_letter(next)) ||
                    (joins_digits(sep) && is_digit09(prev) && is_digit09(next))) {
                    i++;
                    continue;
                }
            }
            break;
        }
        if (PyUnicode_READ(kind, data, start) == '_')
            continue; /* punctuation-initial: not a word with ignore_punctuation */
        if (nw == cap) {
            cap *= 2;
            Word *grown = PyMem_Realloc(w, sizeof(Word) * cap);
            if (!grown) {
                PyMem_Free(w);
                return -2;
            }
            w = grown;
        }
        w[nw].p = data + start * kind;
        w[nw].len = i - start;
        w[nw].kind = kind;
        nw++;
    }
    *out = w;
    return nw;
}

/* fast_words(text) -> the words of the fast path (as udfs.text.uax29_words), None outside it */
static PyObject *py_fast_words(PyObject *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "fast_words: expected str");
        return NULL;
    }
    Word *w = NULL;
    Py_ssize_t nw = fast_words(text, &w);
    if (nw == -1)
        Py_RETURN_NONE;
    if (nw == -2)
        return PyErr_NoMemory();
    const char *base = PyUnicode_DATA(text);
    const int kind = PyUnicode_KIND(text);
    PyObject *out = PyList_New(nw);
    for (Py_ssize_t i = 0; out && i < nw; i++) {
        Py_ssize_t start = (w[i].p - base) / kind;
        PyObject *s = PyUnicode_Substring(text, start, start + w[i].len);
        if (!s) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, s);
    }
    PyMem_Free(w);
    return out;
}

#define MAX_N 64

static PyObject *ngram_repetition(PyObject *self, PyObject *args)
{
    PyObject *src, *limits;
    if (!PyArg_ParseTuple(args, "OO:ngram_repetition", &src, &limits))
        return NULL;
    double limit[MAX_N + 1];
    int checked[MAX_N + 1] = {0};
    int max_n = 1;
    PyObject *seq = PySequence_Fast(limits, "ngram_repetition: limits must be a sequence of (n, max_share)");
    if (!seq)
        return NULL;
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(seq); k++) {
        int n;
        double lim;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, k), "id", &n, &lim)) {
            Py_DECREF(seq);
            return NULL;
        }
        if (n < 2 || n > MAX_N) {
            Py_DECREF(seq);
            return PyErr_Format(PyExc_ValueError, "ngram_repetition: n must be in 2..%d, got %d", MAX_N, n);
        }
        checked[n] = 1;
        limit[n] = lim;
        if (n > max_n)
            max_n = n;
    }
    Py_DECREF(seq);

    Word *w = NULL;
    Py_ssize_t nw;
    if (PyUnicode_Check(src)) {
        nw = fast_words(src, &w);
        if (nw == -1)
            return PyLong_FromLong(-1);
        if (nw == -2)
            return PyErr_NoMemory();
    } else if (PyList_Check(src)) {
        nw = PyList_GET_SIZE(src);
        w = PyMem_Malloc(sizeof(Word) * (nw ? nw : 1));
        if (!w)
            return PyErr_NoMemory();
        for (Py_ssize_t i = 0; i < nw; i++) {
            PyObject *s = PyList_GET_ITEM(src, i);
            if (!PyUnicode_Check(s)) {
                PyMem_Free(w);
                PyErr_SetString(PyExc_TypeError, "ngram_repetition: words must be str");
                return NULL;
            }
            w[i].p = PyUnicode_DATA(s);
            w[i].len = PyUnicode_GET_LENGTH(s);
            w[i].kind = PyUnicode_KIND(s);
        }
    } else {
        PyErr_SetString(PyExc_TypeError, "ngram_repetition: expected a str or a list of str");
        return NULL;
    }
    int r = ngram_rules(w, nw, limit, checked, max_n);
    PyMem_Free(w);
    if (r == -2)
        return PyErr_NoMemory();
    return PyLong_FromLong(r);
}

static PyMethodDef methods[] = {
    {"word_stats", word_stats, METH_O,
     "word_stats(text) -> (ft_tokens, ft_alnum_tokens, ws_words, ws_chars, ws_non_alpha, stop_words)"},
    {"drop_lines_by_char_share", drop_lines_by_char_share, METH_VARARGS,
     "drop_lines_by_char_share(text, counted, max_share) -> text without the non-empty lines whose share of "
     "counted characters ('upper': str.isupper, 'digit': str.isdigit) is above max_share, stripped"},
    {"fast_words", py_fast_words, METH_O,
     "fast_words(text) -> the UAX #29 words of a fast-path text (udfs.text.uax29_words), None otherwise"},
    {"ngram_repetition", ngram_repetition, METH_VARARGS,
     "ngram_repetition(words_or_text, limits) -> first failing n, 0 if none, -1 if a text is outside "
     "the fast path"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rules", "Compiled kernels for udfs.steps.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__rules(void) { return PyModule_Create(&module); }
