/* fastText supervised-model inference for language ID (lid.176), with a per-word cache.
 *
 * Reads a fastText model file (.bin or quantized .ftz) and predicts the top label of a line exactly as
 * fastText's predict does (tokens split on " \n\r\t\v\f\0", the end-of-line token "</s>", character
 * n-grams of out-of-vocabulary words hashed with FNV-1a and mapped through the pruned-bucket index,
 * the hidden vector averaged in float, the hierarchical-softmax tree searched depth first). The same
 * floating-point operations run in the same order, so the probabilities are fastText's, bit for bit;
 * tests/udfs/test_lid_kernel.py compares both on real pages.
 *
 * What is faster: the list of input rows of each distinct token is computed once and cached (fastText
 * recomputes the n-grams of every out-of-vocabulary token, with a hash-map lookup per n-gram), and the
 * quantized input rows are decoded once at load time.
 *
 *   load(path) -> model capsule  (ValueError for a model this reader does not handle: not supervised,
 *                                 not hierarchical softmax, word n-grams > 1, quantized output layer)
 *   predict(model, texts) -> (labels, probabilities): top label and its probability per text (one
 *                            line each, "\n" not allowed), None / 0.0 when fastText predicts nothing
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define FT_MAGIC 793712314
#define KSUB 256

typedef struct {
    char *word;
    int32_t len;
    int64_t count;
    int8_t type; /* 0 word, 1 label */
    int32_t *sub;
    int32_t nsub;
} Entry;

typedef struct {
    int32_t dim, nsubq, dsub, lastdsub;
    float *centroids;
} PQ;

typedef struct {
    char *key;
    int32_t len;
    int32_t off, n; /* rows in the pool */
    uint64_t h;
} CacheSlot;

typedef struct {
    int32_t dim, minn, maxn, bucket, word_ngrams;
    int32_t size, nwords, nlabels;
    int64_t pruneidx_size;
    Entry *words;
    int32_t *word2int;
    int32_t word2int_size;
    /* pruned bucket -> row: open addressing on keys */
    int32_t *prune_keys, *prune_vals;
    int64_t prune_cap;
    float *input; /* rows x dim, decoded */
    int64_t input_rows;
    /* output */
    float *out_dense; /* osz x dim */
    /* hierarchical softmax tree */
    int32_t *left, *right;
    int32_t osz;
    /* token cache */
    CacheSlot *cache;
    int64_t cache_cap, cache_used;
    int32_t *pool;
    int64_t pool_len, pool_cap;
} Model;

/* ------------------------------------------------------------------------------------ reading */

typedef struct {
    FILE *f;
    int failed;
} Reader;

static void rd(Reader *r, void *dst, size_t n)
{
    if (!r->failed && fread(dst, 1, n, r->f) != n)
        r->failed = 1;
}

static int read_pq(Reader *r, PQ *pq)
{
    rd(r, &pq->dim, 4);
    rd(r, &pq->nsubq, 4);
    rd(r, &pq->dsub, 4);
    rd(r, &pq->lastdsub, 4);
    if (r->failed || pq->dim <= 0 || pq->dim > 100000)
        return -1;
    pq->centroids = PyMem_Malloc(sizeof(float) * (size_t)pq->dim * KSUB);
    if (!pq->centroids)
        return -1;
    rd(r, pq->centroids, sizeof(float) * (size_t)pq->dim * KSUB);
    return r->failed ? -1 : 0;
}

static inline const float *pq_centroids(const PQ *pq, int32_t m, uint8_t i)
{
    if (m == pq->nsubq - 1)
        return &pq->centroids[(size_t)m * KSUB * pq->dsub + (size_t)i * pq->lastdsub];
    return &pq->centroids[((size_t)m * KSUB + i) * pq->dsub];
}

static uint32_t ft_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h = h ^ (uint32_t)(int8_t)s[i];
        h = h * 16777619u;
    }
    return h;
}

static int32_t find_slot(const Model *m, const char *w, int32_t len, uint32_t h)
{
    int32_t id = (int32_t)(h % (uint32_t)m->word2int_size);
    while (m->word2int[id] != -1) {
        const Entry *e = &m->words[m->word2int[id]];
        if (e->len == len && memcmp(e->word, w, (size_t)len) == 0)
            break;
        id = (id + 1) % m->word2int_size;
    }
    return id;
}

static int prune_get(const Model *m, int32_t key, int32_t *val)
{
    uint64_t s = ((uint64_t)(uint32_t)key * 0x9E3779B97F4A7C15ULL) & (uint64_t)(m->prune_cap - 1);
    for (;;) {
        if (m->prune_keys[s] == -1)
            return 0;
        if (m->prune_keys[s] == key) {
            *val = m->prune_vals[s];
            return 1;
        }
        s = (s + 1) & (uint64_t)(m->prune_cap - 1);
    }
}

/* fastText's Dictionary::pushHash */
static int push_hash(const Model *m, int32_t id, int32_t **out, int32_t *n, int32_t *cap)
{
    if (m->pruneidx_size == 0 || id < 0)
        return 0;
    if (m->pruneidx_size > 0) {
        int32_t v;
        if (!prune_get(m, id, &v))
            return 0;
        id = v;
    }
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        int32_t *g = PyMem_Realloc(*out, sizeof(int32_t) * (size_t)*cap);
        if (!g)
            return -1;
        *out = g;
    }
    (*out)[(*n)++] = m->nwords + id;
    return 0;
}

/* fastText's Dictionary::computeSubwords on "<word>" (already wrapped) */
static int compute_subwords(const Model *m, const char *w, size_t len, int32_t **out, int32_t *n, int32_t *cap)
{
    for (size_t i = 0; i < len; i++) {
        if ((w[i] & 0xC0) == 0x80)
            continue;
        size_t j = i;
        for (int32_t k = 1; j < len && k <= m->maxn; k++) {
            j++;
            while (j < len && (w[j] & 0xC0) == 0x80)
                j++;
            if (k >= m->minn && !(k == 1 && (i == 0 || j == len))) {
                int32_t h = (int32_t)(ft_hash(w + i, j - i) % (uint32_t)m->bucket);
                if (push_hash(m, h, out, n, cap) < 0)
                    return -1;
            }
        }
    }
    return 0;
}

/* The character n-gram rows of a word: computeSubwords on "<word>" (fastText's BOW / EOW). */
static int word_subwords(const Model *m, const char *w, int32_t len, int32_t **out, int32_t *n, int32_t *cap)
{
    char *wrapped = PyMem_Malloc((size_t)len + 2);
    if (!wrapped)
        return -1;
    wrapped[0] = '<';
    memcpy(wrapped + 1, w, (size_t)len);
    wrapped[len + 1] = '>';
    int rc = compute_subwords(m, wrapped, (size_t)len + 2, out, n, cap);
    PyMem_Free(wrapped);
    return rc;
}

static void model_free(Model *m)
{
    if (!m)
        return;
    if (m->words) {
        for (int32_t i = 0; i < m->size; i++) {
            PyMem_Free(m->words[i].word);
            PyMem_Free(m->words[i].sub);
        }
        PyMem_Free(m->words);
    }
    PyMem_Free(m->word2int);
    PyMem_Free(m->prune_keys);
    PyMem_Free(m->prune_vals);
    PyMem_Free(m->input);
    PyMem_Free(m->out_dense);
    PyMem_Free(m->left);
    PyMem_Free(m->right);
    if (m->cache) {
        for (int64_t i = 0; i < m->cache_cap; i++)
            PyMem_Free(m->cache[i].key);
        PyMem_Free(m->cache);
    }
    PyMem_Free(m->pool);
    PyMem_Free(m);
}

static void capsule_free(PyObject *cap) { model_free(PyCapsule_GetPointer(cap, "lakesift.lid")); }

#define FAIL(msg)                                                                                                \
    do {                                                                                                         \
        err = msg;                                                                                               \
        goto fail;                                                                                               \
    } while (0)

static int build_tree(Model *m)
{
    int32_t osz = m->nlabels, n = 2 * osz - 1;
    int64_t *count = PyMem_Malloc(sizeof(int64_t) * (size_t)n);
    m->left = PyMem_Malloc(sizeof(int32_t) * (size_t)n);
    m->right = PyMem_Malloc(sizeof(int32_t) * (size_t)n);
    if (!count || !m->left || !m->right) {
        PyMem_Free(count);
        return -1;
    }
    for (int32_t i = 0; i < n; i++) {
        m->left[i] = m->right[i] = -1;
        count[i] = (int64_t)1e15;
    }
    int32_t li = 0;
    for (int32_t i = 0; i < m->size; i++) {
        if (m->words[i].type == 1)
            count[li++] = m->words[i].count;
    }
    int32_t leaf = osz - 1, node = osz;
    for (int32_t i = osz; i < n; i++) {
        int32_t mini[2] = {0, 0};
        for (int j = 0; j < 2; j++) {
            if (leaf >= 0 && count[leaf] < count[node])
                mini[j] = leaf--;
            else
                mini[j] = node++;
        }
        m->left[i] = mini[0];
        m->right[i] = mini[1];
        count[i] = count[mini[0]] + count[mini[1]];
    }
    PyMem_Free(count);
    m->osz = osz;
    return 0;
}

static PyObject *load(PyObject *self, PyObject *arg)
{
    PyObject *bytes;
    if (!PyUnicode_FSConverter(arg, &bytes))
        return NULL;
    const char *path = PyBytes_AS_STRING(bytes);
    Reader r = {fopen(path, "rb"), 0};
    if (!r.f) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, arg);
        Py_DECREF(bytes);
        return NULL;
    }
    const char *err = NULL;
    Model *m = PyMem_Calloc(1, sizeof(Model));
    if (!m)
        FAIL("out of memory");
    int32_t magic, version, ws, epoch, min_count, neg, loss, model_kind, lr_update;
    double t;
    rd(&r, &magic, 4);
    rd(&r, &version, 4);
    if (r.failed || magic != FT_MAGIC)
        FAIL("not a fastText model file");
    if (version < 12)
        FAIL("fastText model file version < 12 is not supported");
    rd(&r, &m->dim, 4);
    rd(&r, &ws, 4);
    rd(&r, &epoch, 4);
    rd(&r, &min_count, 4);
    rd(&r, &neg, 4);
    rd(&r, &m->word_ngrams, 4);
    rd(&r, &loss, 4);
    rd(&r, &model_kind, 4);
    rd(&r, &m->bucket, 4);
    rd(&r, &m->minn, 4);
    rd(&r, &m->maxn, 4);
    rd(&r, &lr_update, 4);
    rd(&r, &t, 8);
    if (r.failed)
        FAIL("truncated model file");
    if (model_kind != 3)
        FAIL("not a supervised model");
    if (loss != 1)
        FAIL("only hierarchical-softmax models are handled");
    if (m->word_ngrams > 1)
        FAIL("word n-grams > 1 are not handled");
    if (m->dim <= 0 || m->dim > 4096 || (m->bucket <= 0 && m->maxn > 0))
        FAIL("unexpected model dimensions");

    int64_t ntokens;
    rd(&r, &m->size, 4);
    rd(&r, &m->nwords, 4);
    rd(&r, &m->nlabels, 4);
    rd(&r, &ntokens, 8);
    rd(&r, &m->pruneidx_size, 8);
    if (r.failed || m->size < 0 || m->nlabels <= 0 || m->nwords < 0 || m->nwords + m->nlabels != m->size)
        FAIL("bad dictionary header");
    m->words = PyMem_Calloc((size_t)m->size, sizeof(Entry));
    if (!m->words)
        FAIL("out of memory");
    for (int32_t i = 0; i < m->size; i++) {
        int32_t cap = 16, len = 0;
        char *w = PyMem_Malloc((size_t)cap);
        int c;
        while (w && (c = fgetc(r.f)) != 0) {
            if (c == EOF) {
                r.failed = 1;
                break;
            }
            if (len + 1 >= cap) {
                cap *= 2;
                char *g = PyMem_Realloc(w, (size_t)cap);
                if (!g) {
                    PyMem_Free(w);
                    w = NULL;
                    break;
                }
                w = g;
            }
            w[len++] = (char)c;
        }
        if (!w)
            FAIL("out of memory");
        w[len] = 0;
        m->words[i].word = w;
        m->words[i].len = len;
        rd(&r, &m->words[i].count, 8);
        rd(&r, &m->words[i].type, 1);
        if (r.failed)
            FAIL("truncated dictionary");
    }
    if (m->pruneidx_size > 0) {
        int64_t cap = 16;
        while (cap < m->pruneidx_size * 2)
            cap <<= 1;
        m->prune_cap = cap;
        m->prune_keys = PyMem_Malloc(sizeof(int32_t) * (size_t)cap);
        m->prune_vals = PyMem_Malloc(sizeof(int32_t) * (size_t)cap);
        if (!m->prune_keys || !m->prune_vals)
            FAIL("out of memory");
        for (int64_t i = 0; i < cap; i++)
            m->prune_keys[i] = -1;
        for (int64_t i = 0; i < m->pruneidx_size; i++) {
            int32_t kv[2];
            rd(&r, kv, 8);
            if (r.failed || kv[0] < 0)
                FAIL("bad pruned-bucket index");
            uint64_t s = ((uint64_t)(uint32_t)kv[0] * 0x9E3779B97F4A7C15ULL) & (uint64_t)(cap - 1);
            while (m->prune_keys[s] != -1 && m->prune_keys[s] != kv[0])
                s = (s + 1) & (uint64_t)(cap - 1);
            m->prune_keys[s] = kv[0]; /* a repeated key keeps the last value, as std::map assignment */
            m->prune_vals[s] = kv[1];
        }
    }
    /* word -> id table, and each word's rows (itself, then its character n-grams) */
    m->word2int_size = (int32_t)ceil(m->size / 0.7);
    if (m->word2int_size < 1)
        m->word2int_size = 1;
    m->word2int = PyMem_Malloc(sizeof(int32_t) * (size_t)m->word2int_size);
    if (!m->word2int)
        FAIL("out of memory");
    for (int32_t i = 0; i < m->word2int_size; i++)
        m->word2int[i] = -1;
    for (int32_t i = 0; i < m->size; i++) {
        Entry *e = &m->words[i];
        m->word2int[find_slot(m, e->word, e->len, ft_hash(e->word, (size_t)e->len))] = i;
        int32_t cap = 8; /* a word's rows: itself, then its character n-grams (fastText's initNgrams) */
        e->sub = PyMem_Malloc(sizeof(int32_t) * (size_t)cap);
        if (!e->sub)
            FAIL("out of memory");
        e->sub[e->nsub++] = i;
        if (!(e->len == 4 && memcmp(e->word, "</s>", 4) == 0) && m->maxn > 0 &&
            word_subwords(m, e->word, e->len, &e->sub, &e->nsub, &cap) < 0)
            FAIL("out of memory");
    }

    /* input matrix, decoded to floats */
    int8_t quant_input;
    rd(&r, &quant_input, 1);
    if (r.failed)
        FAIL("truncated model file");
    if (quant_input) {
        int8_t qnorm;
        int64_t rows, cols;
        int32_t codesize;
        rd(&r, &qnorm, 1);
        rd(&r, &rows, 8);
        rd(&r, &cols, 8);
        rd(&r, &codesize, 4);
        if (r.failed || cols != m->dim || rows <= 0 || codesize <= 0)
            FAIL("bad quantized input matrix");
        uint8_t *codes = PyMem_Malloc((size_t)codesize);
        PQ pq = {0}, npq = {0};
        uint8_t *norm_codes = NULL;
        if (!codes)
            FAIL("out of memory");
        rd(&r, codes, (size_t)codesize);
        int ok = read_pq(&r, &pq) == 0;
        if (ok && qnorm) {
            norm_codes = PyMem_Malloc((size_t)rows);
            ok = norm_codes != NULL;
            if (ok)
                rd(&r, norm_codes, (size_t)rows);
            ok = ok && !r.failed && read_pq(&r, &npq) == 0;
        }
        /* sub-quantizers must tile the dimension exactly (no reads or writes past a row / the centroids) */
        ok = ok && pq.dim == m->dim && pq.nsubq > 0 && pq.dsub > 0 && pq.lastdsub > 0 &&
             (int64_t)(pq.nsubq - 1) * pq.dsub + pq.lastdsub == m->dim && (int64_t)pq.nsubq * rows <= codesize;
        ok = ok && (!qnorm || (npq.dim == 1 && npq.nsubq == 1 && npq.dsub == 1 && npq.lastdsub == 1));
        if (ok) {
            m->input = PyMem_Calloc((size_t)rows * (size_t)m->dim, sizeof(float));
            ok = m->input != NULL;
        }
        if (ok) {
            for (int64_t i = 0; i < rows; i++) {
                float alpha = 1.0f;
                if (qnorm)
                    alpha = pq_centroids(&npq, 0, norm_codes[i])[0];
                const uint8_t *code = codes + (size_t)pq.nsubq * i;
                float *x = m->input + (size_t)i * m->dim;
                for (int32_t k = 0; k < pq.nsubq; k++) {
                    const float *c = pq_centroids(&pq, k, code[k]);
                    int32_t d = k == pq.nsubq - 1 ? pq.lastdsub : pq.dsub;
                    for (int32_t j = 0; j < d; j++)
                        x[k * pq.dsub + j] = alpha * c[j]; /* fastText adds alpha * c[j] to the sum */
                }
            }
            m->input_rows = rows;
        }
        PyMem_Free(codes);
        PyMem_Free(norm_codes);
        PyMem_Free(pq.centroids);
        PyMem_Free(npq.centroids);
        if (!ok)
            FAIL("bad quantized input matrix");
    } else {
        int64_t rows, cols;
        rd(&r, &rows, 8);
        rd(&r, &cols, 8);
        if (r.failed || cols != m->dim || rows <= 0)
            FAIL("bad input matrix");
        m->input = PyMem_Malloc(sizeof(float) * (size_t)rows * (size_t)cols);
        if (!m->input)
            FAIL("out of memory");
        rd(&r, m->input, sizeof(float) * (size_t)rows * (size_t)cols);
        m->input_rows = rows;
    }
    /* output matrix */
    int8_t qout;
    rd(&r, &qout, 1);
    if (r.failed)
        FAIL("truncated model file");
    if (quant_input && qout) /* fastText quantizes the output only with >= 256 labels */
        FAIL("quantized output layers are not handled");
    {
        int64_t rows, cols;
        rd(&r, &rows, 8);
        rd(&r, &cols, 8);
        if (r.failed || cols != m->dim || rows != m->nlabels)
            FAIL("bad output matrix");
        m->out_dense = PyMem_Malloc(sizeof(float) * (size_t)rows * (size_t)cols);
        if (!m->out_dense)
            FAIL("out of memory");
        rd(&r, m->out_dense, sizeof(float) * (size_t)rows * (size_t)cols);
    }
    if (r.failed)
        FAIL("truncated model file");
    for (int32_t i = 0; i < m->size; i++) {
        if (m->words[i].type != (i >= m->nwords))
            FAIL("bad dictionary: words and labels out of place");
        for (int32_t k = 0; k < m->words[i].nsub; k++) {
            if (m->words[i].sub[k] < 0 || m->words[i].sub[k] >= m->input_rows)
                FAIL("dictionary refers to rows outside the input matrix");
        }
    }
    /* every row an out-of-vocabulary n-gram can reach */
    if (m->pruneidx_size > 0) {
        for (int64_t i = 0; i < m->prune_cap; i++) {
            if (m->prune_keys[i] != -1 &&
                (m->prune_vals[i] < 0 || (int64_t)m->nwords + m->prune_vals[i] >= m->input_rows))
                FAIL("pruned-bucket index refers to rows outside the input matrix");
        }
    } else if (m->pruneidx_size < 0 && m->maxn > 0 && (int64_t)m->nwords + m->bucket > m->input_rows) {
        FAIL("input matrix smaller than words + buckets");
    }
    if (build_tree(m) < 0)
        FAIL("out of memory");
    m->cache_cap = 1 << 16;
    m->cache = PyMem_Calloc((size_t)m->cache_cap, sizeof(CacheSlot));
    if (!m->cache)
        FAIL("out of memory");
    fclose(r.f);
    Py_DECREF(bytes);
    PyObject *cap = PyCapsule_New(m, "lakesift.lid", capsule_free);
    if (!cap)
        model_free(m);
    return cap;

fail:
    fclose(r.f);
    Py_DECREF(bytes);
    model_free(m);
    PyErr_Format(PyExc_ValueError, "%s: %s", path, err);
    return NULL;
}

/* --------------------------------------------------------------------------------- prediction */

static float out_dot(const Model *m, const float *hidden, int32_t row)
{
    float res = 0.0f;
    const float *w = m->out_dense + (size_t)row * m->dim;
    for (int32_t j = 0; j < m->dim; j++)
        res += w[j] * hidden[j];
    return res;
}

static inline float std_log(float x) { return (float)log((double)x + 1e-5); }

static void dfs(const Model *m, float threshold_log, int32_t node, float score, const float *hidden,
                float *best_score, int32_t *best_node)
{
    if (score < threshold_log)
        return;
    if (*best_node >= 0 && score < *best_score)
        return;
    if (m->left[node] == -1 && m->right[node] == -1) {
        if (*best_node < 0 || score > *best_score) {
            *best_score = score;
            *best_node = node;
        }
        return;
    }
    float f = out_dot(m, hidden, node - m->osz);
    f = (float)(1.0 / (double)(1.0f + expf(-f)));
    dfs(m, threshold_log, m->left[node], score + std_log((float)(1.0 - (double)f)), hidden, best_score, best_node);
    dfs(m, threshold_log, m->right[node], score + std_log(f), hidden, best_score, best_node);
}

static uint64_t key_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void cache_clear(Model *m)
{
    for (int64_t i = 0; i < m->cache_cap; i++) {
        PyMem_Free(m->cache[i].key);
        m->cache[i].key = NULL;
    }
    m->cache_used = 0;
    m->pool_len = 0;
}

/* The input rows of one token (in fastText's order), through the cache; NULL on memory error. */
static const CacheSlot *token_rows(Model *m, const char *tok, int32_t len)
{
    uint64_t h = key_hash(tok, (size_t)len);
    uint64_t mask = (uint64_t)m->cache_cap - 1;
    uint64_t s = h & mask;
    while (m->cache[s].key) {
        CacheSlot *c = &m->cache[s];
        if (c->h == h && c->len == len && memcmp(c->key, tok, (size_t)len) == 0)
            return c;
        s = (s + 1) & mask;
    }
    /* miss: what fastText's getLine adds for this token */
    int32_t *rows = NULL, n = 0, cap = 0;
    uint32_t fh = ft_hash(tok, (size_t)len);
    int32_t wid = m->word2int[find_slot(m, tok, len, fh)];
    int is_label = wid >= 0 ? m->words[wid].type == 1 : (len >= 9 && memcmp(tok, "__label__", 9) == 0);
    if (!is_label) {
        if (wid >= 0) {
            rows = m->words[wid].sub;
            n = m->words[wid].nsub;
        } else if (!(len == 4 && memcmp(tok, "</s>", 4) == 0) && m->maxn > 0 &&
                   word_subwords(m, tok, len, &rows, &n, &cap) < 0) {
            PyMem_Free(rows);
            return NULL;
        }
    }
    if (m->cache_used * 2 >= m->cache_cap) { /* grow, or start over past 1M distinct tokens (~170 MB) */
        if (m->cache_cap >= (1 << 21)) {
            cache_clear(m);
        } else {
            int64_t ncap = m->cache_cap * 2;
            CacheSlot *nc = PyMem_Calloc((size_t)ncap, sizeof(CacheSlot));
            if (!nc) {
                if (wid < 0)
                    PyMem_Free(rows);
                return NULL;
            }
            for (int64_t i = 0; i < m->cache_cap; i++) {
                if (!m->cache[i].key)
                    continue;
                uint64_t t = m->cache[i].h & (uint64_t)(ncap - 1);
                while (nc[t].key)
                    t = (t + 1) & (uint64_t)(ncap - 1);
                nc[t] = m->cache[i];
            }
            PyMem_Free(m->cache);
            m->cache = nc;
            m->cache_cap = ncap;
        }
        mask = (uint64_t)m->cache_cap - 1;
        s = h & mask;
        while (m->cache[s].key)
            s = (s + 1) & mask;
    }
    if (m->pool_len + n > m->pool_cap) {
        int64_t ncap = m->pool_cap ? m->pool_cap : 1 << 16;
        while (ncap < m->pool_len + n)
            ncap *= 2;
        int32_t *g = PyMem_Realloc(m->pool, sizeof(int32_t) * (size_t)ncap);
        if (!g) {
            if (wid < 0)
                PyMem_Free(rows);
            return NULL;
        }
        m->pool = g;
        m->pool_cap = ncap;
    }
    char *key = PyMem_Malloc((size_t)len ? (size_t)len : 1);
    if (!key) {
        if (wid < 0)
            PyMem_Free(rows);
        return NULL;
    }
    memcpy(key, tok, (size_t)len);
    if (n)
        memcpy(m->pool + m->pool_len, rows, sizeof(int32_t) * (size_t)n);
    if (wid < 0)
        PyMem_Free(rows);
    CacheSlot *c = &m->cache[s];
    c->key = key;
    c->len = len;
    c->h = h;
    c->off = (int32_t)m->pool_len;
    c->n = n;
    m->pool_len += n;
    m->cache_used++;
    return c;
}

static inline int is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f' || c == '\0';
}

/* Top label index (-1: none) and its probability for one line. */
static int predict_line(Model *m, const char *s, Py_ssize_t n, float *hidden, int32_t *label, float *prob)
{
    const int32_t dim = m->dim;
    for (int32_t j = 0; j < dim; j++)
        hidden[j] = 0.0f;
    int64_t nrows = 0;
    Py_ssize_t i = 0;
    for (;;) { /* fastText's getLine: every word, then "</s>" (from the "\n" the Python binding appends) */
        const char *tok = "</s>";
        int32_t len = 4;
        while (i < n && is_ws(s[i]))
            i++;
        if (i < n) {
            Py_ssize_t start = i;
            while (i < n && !is_ws(s[i]))
                i++;
            tok = s + start;
            len = (int32_t)(i - start);
        }
        const CacheSlot *c = token_rows(m, tok, len);
        if (!c)
            return -1;
        const int32_t *rows = m->pool + c->off;
        for (int32_t k = 0; k < c->n; k++) {
            const float *x = m->input + (size_t)rows[k] * dim;
            for (int32_t j = 0; j < dim; j++)
                hidden[j] += x[j];
        }
        nrows += c->n;
        if (len == 4 && memcmp(tok, "</s>", 4) == 0)
            break; /* getLine stops at the end-of-line token, also a literal "</s>" in the text */
    }
    *label = -1;
    *prob = 0.0f;
    if (nrows == 0)
        return 0;
    const float a = (float)(1.0 / (double)nrows);
    for (int32_t j = 0; j < dim; j++)
        hidden[j] *= a;
    float best = 0.0f;
    int32_t node = -1;
    dfs(m, std_log(0.0f), 2 * m->osz - 2, 0.0f, hidden, &best, &node);
    if (node >= 0) {
        *label = node;
        *prob = expf(best);
    }
    return 0;
}

static PyObject *predict(PyObject *self, PyObject *args)
{
    PyObject *cap, *texts;
    if (!PyArg_ParseTuple(args, "OO:predict", &cap, &texts))
        return NULL;
    Model *m = PyCapsule_GetPointer(cap, "lakesift.lid");
    if (!m)
        return NULL;
    PyObject *seq = PySequence_Fast(texts, "predict: texts must be a sequence of str");
    if (!seq)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject *labels = PyList_New(count), *probs = PyList_New(count);
    float *hidden = PyMem_Malloc(sizeof(float) * (size_t)m->dim);
    if (!labels || !probs || !hidden)
        goto error;
    for (Py_ssize_t t = 0; t < count; t++) {
        PyObject *text = PySequence_Fast_GET_ITEM(seq, t);
        if (!PyUnicode_Check(text)) {
            PyErr_SetString(PyExc_TypeError, "predict: texts must be str");
            goto error;
        }
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(text, &n);
        if (!s)
            goto error;
        if (memchr(s, '\n', (size_t)n)) {
            PyErr_SetString(PyExc_ValueError, "predict processes one line at a time (remove '\\n')");
            goto error;
        }
        int32_t label;
        float prob;
        if (predict_line(m, s, n, hidden, &label, &prob) < 0) {
            PyErr_NoMemory();
            goto error;
        }
        PyObject *lab;
        if (label < 0) {
            lab = Py_None;
            Py_INCREF(lab);
        } else {
            const Entry *e = &m->words[m->nwords + label];
            lab = PyUnicode_DecodeUTF8(e->word, e->len, "replace");
            if (!lab)
                goto error;
        }
        PyList_SET_ITEM(labels, t, lab);
        PyObject *p = PyFloat_FromDouble((double)prob);
        if (!p)
            goto error;
        PyList_SET_ITEM(probs, t, p);
    }
    PyMem_Free(hidden);
    Py_DECREF(seq);
    return Py_BuildValue("(NN)", labels, probs);

error:
    PyMem_Free(hidden);
    Py_DECREF(seq);
    Py_XDECREF(labels);
    Py_XDECREF(probs);
    return NULL;
}

static PyMethodDef methods[] = {
    {"load", load, METH_O, "load(path) -> model: a fastText supervised model (.bin / .ftz) for predict()"},
    {"predict", predict, METH_VARARGS,
     "predict(model, texts) -> (labels, probabilities): fastText's top-1 prediction for each line"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_lid", "fastText language-ID inference.", -1, methods};

PyMODINIT_FUNC PyInit__lid(void) { return PyModule_Create(&module); }
