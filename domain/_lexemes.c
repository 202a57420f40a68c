/* A chunk's tsvector built in C: `lexical.document` and `lexical.document_text` for ASCII content.
 *
 * Same terms, counts, order and bytes as the Python code in domain/lexical.py, which stays the
 * reference (and the path for non-ASCII content, or where this module was not built):
 * tests/unit/test_compiled_lexemes.py compares the two on generated and real text. In one thread,
 * over 8,872 stdlib chunks, `lexical.document` cost 43.4 us a chunk in Python (most of it a Python
 * step per identifier) and 11.8 with this module (5.5 of them here; the rest is the symbol's terms).
 *
 * Terms of the body: every run of [A-Za-z0-9_] is an identifier; its whole term is the identifier
 * without outer underscores, lowercased, inner underscores dropped; its parts are the camelCase
 * parts of each piece between underscores ("HTTPServer" -> http, server; "utf8Decode" -> utf, 8,
 * decode), kept when there are several. A term longer than MAX_TERM_CHARS is dropped.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_TERM_CHARS 64 /* lexical.MAX_TERM_CHARS */
#define MAX_POSITIONS 255 /* lexical.MAX_POSITIONS */

/* Weights in a position word's top two bits, and their letters in the text form (D has none). */
enum { WEIGHT_A = 3, WEIGHT_B = 2, WEIGHT_D = 0 };

typedef struct {
    Py_ssize_t offset; /* into Terms.text */
    int length;
    int count;         /* occurrences in the body; -1 once a fixed term has taken them */
} Term;

/* The body's distinct terms in order of first occurrence, and an open-addressing index over them. */
typedef struct {
    char *text;
    Py_ssize_t text_used, text_size;
    Term *terms;
    Py_ssize_t used, size;
    Py_ssize_t *slots; /* index into terms + 1; 0 is empty */
    Py_ssize_t mask;
} Terms;

static uint64_t hash_bytes(const char *s, int n) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (int i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

static int terms_init(Terms *t, Py_ssize_t content_length) {
    memset(t, 0, sizeof(*t));
    /* A byte of content yields at most two bytes of terms (the whole identifier and its parts). */
    t->text_size = 2 * content_length + 1;
    t->size = 64;
    t->mask = 127;
    t->text = PyMem_Malloc(t->text_size);
    t->terms = PyMem_Malloc(t->size * sizeof(Term));
    t->slots = PyMem_Calloc(t->mask + 1, sizeof(Py_ssize_t));
    if (!t->text || !t->terms || !t->slots) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void terms_free(Terms *t) {
    PyMem_Free(t->text);
    PyMem_Free(t->terms);
    PyMem_Free(t->slots);
}

static Py_ssize_t *terms_slot(const Terms *t, const char *s, int n) {
    Py_ssize_t i = (Py_ssize_t)(hash_bytes(s, n) & (uint64_t)t->mask);
    for (;;) {
        Py_ssize_t *slot = &t->slots[i];
        if (*slot == 0)
            return slot;
        const Term *term = &t->terms[*slot - 1];
        if (term->length == n && memcmp(t->text + term->offset, s, (size_t)n) == 0)
            return slot;
        i = (i + 1) & t->mask;
    }
}

static int terms_grow(Terms *t) {
    Py_ssize_t mask = 2 * (t->mask + 1) - 1;
    Py_ssize_t *slots = PyMem_Calloc(mask + 1, sizeof(Py_ssize_t));
    Term *terms = PyMem_Realloc(t->terms, 2 * t->size * sizeof(Term));
    if (!slots || !terms) {
        PyMem_Free(slots);
        if (terms)
            t->terms = terms;
        PyErr_NoMemory();
        return -1;
    }
    PyMem_Free(t->slots);
    t->slots = slots;
    t->mask = mask;
    t->terms = terms;
    t->size *= 2;
    for (Py_ssize_t k = 0; k < t->used; k++)
        *terms_slot(t, t->text + t->terms[k].offset, t->terms[k].length) = k + 1;
    return 0;
}

/* Count one occurrence of a term (already lowercased, 1..MAX_TERM_CHARS bytes). */
static int terms_add(Terms *t, const char *s, int n) {
    Py_ssize_t *slot = terms_slot(t, s, n);
    if (*slot) {
        t->terms[*slot - 1].count++;
        return 0;
    }
    if (t->used == t->size) {
        if (terms_grow(t) < 0)
            return -1;
        slot = terms_slot(t, s, n);
    }
    if (t->text_used + n > t->text_size) { /* cannot happen: the size bounds every term's bytes */
        PyErr_SetString(PyExc_RuntimeError, "term buffer overflow");
        return -1;
    }
    memcpy(t->text + t->text_used, s, (size_t)n);
    t->terms[t->used] = (Term){t->text_used, n, 1};
    t->text_used += n;
    *slot = ++t->used;
    return 0;
}

/* Byte classes, by table: a branch per class test cost more than the rest of the scan. */
enum { WORD = 1, UPPER = 2, LOWER = 4, DIGIT = 8 };
static unsigned char classes[256];

static void init_classes(void) {
    for (int c = 0; c < 256; c++)
        classes[c] = (unsigned char)((c >= 'A' && c <= 'Z') ? WORD | UPPER
                                   : (c >= 'a' && c <= 'z') ? WORD | LOWER
                                   : (c >= '0' && c <= '9') ? WORD | DIGIT
                                   : c == '_'               ? WORD
                                                            : 0);
}

static inline int is_upper(unsigned char c) { return classes[c] & UPPER; }
static inline int is_lower(unsigned char c) { return classes[c] & LOWER; }
static inline int is_digit(unsigned char c) { return classes[c] & DIGIT; }
static inline int is_word(unsigned char c) { return classes[c] & WORD; }
static inline char lowered(unsigned char c) { return (char)(is_upper(c) ? c + 32 : c); }

/* The camelCase parts of an alphanumeric piece, as lexical._ASCII_PART finds them:
 * [A-Z]+(?![a-z]) | [A-Z]?[a-z]+ | [0-9]+. Each part is [starts[k], ends[k]). */
static Py_ssize_t camel_parts(const unsigned char *p, Py_ssize_t n, Py_ssize_t *starts, Py_ssize_t *ends) {
    Py_ssize_t found = 0, i = 0;
    while (i < n) {
        Py_ssize_t j = i;
        if (is_digit(p[i])) {
            while (j < n && is_digit(p[j]))
                j++;
        } else if (is_upper(p[i])) {
            while (j < n && is_upper(p[j]))
                j++;
            if (j < n && is_lower(p[j])) {
                if (j - i >= 2) {
                    j--; /* "HTTPServer": HTTP, then Server */
                } else {
                    while (j < n && is_lower(p[j]))
                        j++;
                }
            }
        } else {
            while (j < n && is_lower(p[j]))
                j++;
        }
        starts[found] = i;
        ends[found++] = j;
        i = j;
    }
    return found;
}

/* The terms of one identifier p[0:n] (a run of word bytes), counted. `starts`/`ends` have room for n parts. */
static int add_identifier(Terms *t, const unsigned char *p, Py_ssize_t n, Py_ssize_t *starts, Py_ssize_t *ends) {
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi && p[lo] == '_')
        lo++;
    while (hi > lo && p[hi - 1] == '_')
        hi--;
    if (lo == hi)
        return 0;
    Py_ssize_t length = 0;
    for (Py_ssize_t i = lo; i < hi; i++)
        length += p[i] != '_';
    if (length <= MAX_TERM_CHARS) {
        char whole[MAX_TERM_CHARS];
        length = 0;
        for (Py_ssize_t i = lo; i < hi; i++)
            if (p[i] != '_')
                whole[length++] = lowered(p[i]);
        if (terms_add(t, whole, (int)length) < 0)
            return -1;
    }
    Py_ssize_t parts = 0;
    for (Py_ssize_t i = lo; i < hi;) {
        Py_ssize_t j = i;
        while (j < hi && p[j] != '_')
            j++;
        Py_ssize_t found = camel_parts(p + i, j - i, starts + parts, ends + parts);
        for (Py_ssize_t k = parts; k < parts + found; k++) {
            starts[k] += i;
            ends[k] += i;
        }
        parts += found;
        i = j + 1;
    }
    if (parts < 2)
        return 0;
    char part[MAX_TERM_CHARS];
    for (Py_ssize_t k = 0; k < parts; k++) {
        Py_ssize_t size = ends[k] - starts[k];
        if (size > MAX_TERM_CHARS)
            continue;
        for (Py_ssize_t i = 0; i < size; i++)
            part[i] = lowered(p[starts[k] + i]);
        if (terms_add(t, part, (int)size) < 0)
            return -1;
    }
    return 0;
}

#define STACK_PARTS 1024

/* The first run of word bytes of p[from:n], as [*start, *end); 0 when there is none. */
static inline int next_word(const unsigned char *p, Py_ssize_t n, Py_ssize_t from, Py_ssize_t *start, Py_ssize_t *end) {
    while (from < n && !is_word(p[from]))
        from++;
    if (from >= n)
        return 0;
    *start = *end = from;
    while (*end < n && is_word(p[*end]))
        (*end)++;
    return 1;
}

/* Every identifier of s[0:n], counted. An identifier has at most one part a byte: its parts' bounds
 * fit on the stack unless it is longer than STACK_PARTS (minified code), which gets its own. */
static int add_body(Terms *t, const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t stack[2 * STACK_PARTS];
    for (Py_ssize_t i, j = 0; next_word(s, n, j, &i, &j);) {
        Py_ssize_t length = j - i, *starts = stack, *ends = stack + STACK_PARTS;
        if (length > STACK_PARTS) {
            if (!(starts = PyMem_Malloc(2 * length * sizeof(Py_ssize_t)))) {
                PyErr_NoMemory();
                return -1;
            }
            ends = starts + length;
        }
        int failed = add_identifier(t, s + i, length, starts, ends) < 0;
        if (starts != stack)
            PyMem_Free(starts);
        if (failed)
            return -1;
    }
    return 0;
}

/* The counted terms of ASCII `text` (`what` names it in the error when it is not); terms_free after, either way. */
static int ascii_terms(Terms *t, PyObject *text, const char *what) {
    memset(t, 0, sizeof(*t));
    if (!PyUnicode_IS_ASCII(text)) {
        PyErr_Format(PyExc_ValueError, "%s must be ASCII", what);
        return -1;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    return terms_init(t, n) < 0 ? -1 : add_body(t, PyUnicode_1BYTE_DATA(text), n);
}

/* A growing output buffer. */
typedef struct {
    char *data;
    Py_ssize_t used, size;
} Out;

static int out_reserve(Out *o, Py_ssize_t more) {
    if (o->used + more <= o->size)
        return 0;
    Py_ssize_t size = 2 * (o->used + more);
    char *data = PyMem_Realloc(o->data, size);
    if (!data) {
        PyErr_NoMemory();
        return -1;
    }
    o->data = data;
    o->size = size;
    return 0;
}

static int out_put(Out *o, const char *s, Py_ssize_t n) {
    if (out_reserve(o, n) < 0)
        return -1;
    memcpy(o->data + o->used, s, (size_t)n);
    o->used += n;
    return 0;
}

/* A lexeme with positions 1..n: `symbol` of weight A, then `path` of B, then `body` of D, at most
 * MAX_POSITIONS (lexical._positions / lexical._text_positions). */
static int put_lexeme(Out *o, int text, const char *term, Py_ssize_t n, long symbol, long path, long body) {
    long total = symbol + path + body;
    if (total > MAX_POSITIONS)
        total = MAX_POSITIONS;
    if (out_reserve(o, n + 8 + total * 6) < 0)
        return -1;
    char *w = o->data + o->used;
    if (text) {
        if (o->used)
            *w++ = ' ';
        *w++ = '\'';
        memcpy(w, term, (size_t)n);
        w += n;
        *w++ = '\'';
        *w++ = ':';
        for (long k = 1; k <= total; k++) {
            if (k > 1)
                *w++ = ',';
            if (k >= 100)
                *w++ = (char)('0' + k / 100);
            if (k >= 10)
                *w++ = (char)('0' + k / 10 % 10);
            *w++ = (char)('0' + k % 10);
            if (k <= symbol)
                *w++ = 'A';
            else if (k <= symbol + path)
                *w++ = 'B';
        }
    } else {
        memcpy(w, term, (size_t)n);
        w += n;
        *w++ = '\0';
        *w++ = (char)(total >> 8);
        *w++ = (char)(total & 0xff);
        for (long k = 1; k <= total; k++) {
            int weight = k <= symbol ? WEIGHT_A : k <= symbol + path ? WEIGHT_B : WEIGHT_D;
            unsigned word = (unsigned)(weight << 14) | (unsigned)k;
            *w++ = (char)(word >> 8);
            *w++ = (char)(word & 0xff);
        }
    }
    o->used = w - o->data;
    return 0;
}

/* One term of the symbol or the path, with the body's occurrences it takes over; `lexemes` counts. */
static int put_fixed(Out *o, Terms *terms, int text, PyObject *term, long symbol, long path, Py_ssize_t *lexemes) {
    Py_ssize_t size;
    const char *bytes = PyUnicode_AsUTF8AndSize(term, &size);
    if (!bytes)
        return -1;
    long body = 0;
    if (size <= MAX_TERM_CHARS) {
        Py_ssize_t slot = *terms_slot(terms, bytes, (int)size);
        if (slot && terms->terms[slot - 1].count > 0) {
            body = terms->terms[slot - 1].count;
            terms->terms[slot - 1].count = -1;
            (*lexemes)--; /* counted once, as the fixed term */
        }
    }
    (*lexemes)++;
    return put_lexeme(o, text, bytes, size, symbol, path, body);
}

/* A count from the caller's dicts; -1 with an exception set when it is not a non-negative int. */
static long count_of(PyObject *value) {
    long n = PyLong_Check(value) ? PyLong_AsLong(value) : -1;
    if (n < 0 && !PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "term counts must be non-negative ints");
    return n;
}

static int check_term(PyObject *key) {
    if (PyUnicode_Check(key))
        return 0;
    PyErr_SetString(PyExc_TypeError, "terms must be str");
    return -1;
}

/* The symbol's terms, then the path's that the symbol lacks: {**named, **located}'s order. */
static int put_fixed_terms(Out *o, Terms *terms, int text, PyObject *named, PyObject *located, Py_ssize_t *lexemes) {
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(named, &pos, &key, &value)) {
        PyObject *in_path = PyDict_GetItemWithError(located, key);
        if (!in_path && PyErr_Occurred())
            return -1;
        long symbol = count_of(value), path = in_path ? count_of(in_path) : 0;
        if (symbol < 0 || path < 0 || check_term(key) < 0 || put_fixed(o, terms, text, key, symbol, path, lexemes) < 0)
            return -1;
    }
    pos = 0;
    while (PyDict_Next(located, &pos, &key, &value)) {
        int seen = PyDict_Contains(named, key);
        if (seen < 0)
            return -1;
        if (seen)
            continue;
        long path = count_of(value);
        if (path < 0 || check_term(key) < 0 || put_fixed(o, terms, text, key, 0, path, lexemes) < 0)
            return -1;
    }
    return 0;
}

static PyObject *document(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *content, *named, *located;
    int text;
    if (!PyArg_ParseTuple(args, "UO!O!p", &content, &PyDict_Type, &named, &PyDict_Type, &located, &text))
        return NULL;
    Terms terms;
    Out out = {NULL, 0, 0};
    PyObject *result = NULL;
    if (ascii_terms(&terms, content, "content") < 0)
        goto done;
    Py_ssize_t lexemes = terms.used;
    if (!text && out_put(&out, "\0\0\0\0", 4) < 0) /* the lexeme count, filled in below */
        goto done;
    if (put_fixed_terms(&out, &terms, text, named, located, &lexemes) < 0)
        goto done;
    for (int once = 1; once >= 0; once--) { /* terms that occur once first, as lexical.document */
        for (Py_ssize_t k = 0; k < terms.used; k++) {
            const Term *term = &terms.terms[k];
            if (term->count > 0 && (term->count == 1) == once &&
                put_lexeme(&out, text, terms.text + term->offset, term->length, 0, 0, term->count) < 0)
                goto done;
        }
    }
    if (text) {
        result = PyUnicode_DecodeUTF8(out.data ? out.data : "", out.used, "strict"); /* path terms may be UTF-8 */
    } else {
        uint32_t count = (uint32_t)lexemes;
        out.data[0] = (char)(count >> 24);
        out.data[1] = (char)(count >> 16);
        out.data[2] = (char)(count >> 8);
        out.data[3] = (char)count;
        result = PyBytes_FromStringAndSize(out.data, out.used);
    }
done:
    terms_free(&terms);
    PyMem_Free(out.data);
    return result;
}

/* lexical._fixed_terms for ASCII text: Counter(terms(text)) as a dict, terms in order of first occurrence. */
static PyObject *counted_terms(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *text;
    if (!PyArg_ParseTuple(args, "U", &text))
        return NULL;
    Terms terms;
    PyObject *result = NULL, *counted = NULL;
    if (ascii_terms(&terms, text, "text") < 0 || !(counted = PyDict_New()))
        goto done;
    for (Py_ssize_t k = 0; k < terms.used; k++) {
        const Term *term = &terms.terms[k];
        PyObject *key = PyUnicode_FromStringAndSize(terms.text + term->offset, term->length);
        PyObject *value = key ? PyLong_FromLong(term->count) : NULL;
        int failed = !value || PyDict_SetItem(counted, key, value) < 0;
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (failed)
            goto done;
    }
    result = counted;
    counted = NULL;
done:
    Py_XDECREF(counted);
    terms_free(&terms);
    return result;
}

/* ---- token_hashing's tokens of ASCII texts: the hashing embedder's input ----------------------------
 *
 * The same tokens and 64-bit hashes as token_hashing._ascii_tokens's numpy code (the reference, and the
 * path where this module was not built): in every run of [A-Za-z0-9_], parts start at an alphanumeric
 * byte after a non-alphanumeric one, at a letter/digit change, at lower -> upper, and at the last upper
 * of an upper run that a lower follows; a part ends where the next starts or at a non-alphanumeric byte.
 * A run's whole token goes from its first part to its last (outer underscores dropped, inner kept); its
 * parts are tokens too when there are several. A token's hash is sum(lowered[k] * P**k) + length * G
 * modulo 2**64, then splitmix64's finaliser. */

#define TOKEN_P 0x100000001B3ULL     /* token_hashing._P */
#define TOKEN_G 0x9E3779B97F4A7C15ULL /* the length's multiplier in token_hashing._hashes */

static inline int is_alnum_byte(unsigned char c) { return classes[c] & (UPPER | LOWER | DIGIT); }

static uint64_t token_hash(const unsigned char *p, Py_ssize_t start, Py_ssize_t end) {
    uint64_t h = 0, power = 1;
    for (Py_ssize_t k = start; k < end; k++) {
        h += (uint64_t)(unsigned char)lowered(p[k]) * power;
        power *= TOKEN_P;
    }
    h += (uint64_t)(end - start) * TOKEN_G;
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ULL;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBULL;
    return h ^ (h >> 31);
}

typedef struct {
    int64_t *owners;
    uint64_t *hashes;
    Py_ssize_t used, size;
} Found;

static int found_add(Found *f, int64_t owner, uint64_t hash) {
    if (f->used == f->size) {
        Py_ssize_t size = f->size ? 2 * f->size : 4096;
        int64_t *owners = PyMem_Realloc(f->owners, (size_t)size * sizeof(int64_t));
        if (owners == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        f->owners = owners;
        uint64_t *hashes = PyMem_Realloc(f->hashes, (size_t)size * sizeof(uint64_t));
        if (hashes == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        f->hashes = hashes;
        f->size = size;
    }
    f->owners[f->used] = owner;
    f->hashes[f->used++] = hash;
    return 0;
}

/* Whether a part starts at p[i] (an alphanumeric byte; p[0:n] is one text). */
static inline int starts_part(const unsigned char *p, Py_ssize_t n, Py_ssize_t i) {
    if (i == 0 || !is_alnum_byte(p[i - 1]) || !is_digit(p[i - 1]) != !is_digit(p[i]))
        return 1;
    if (is_upper(p[i]) && is_lower(p[i - 1]))
        return 1;
    return is_upper(p[i]) && is_upper(p[i - 1]) && i + 1 < n && is_lower(p[i + 1]);
}

static int text_tokens(Found *f, int64_t owner, const unsigned char *p, Py_ssize_t n) {
    for (Py_ssize_t i, run_end = 0; next_word(p, n, run_end, &i, &run_end);) {
        Py_ssize_t parts = 0, first = -1, last = -1;
        for (Py_ssize_t b = i; b < run_end;) {
            if (!is_alnum_byte(p[b])) {
                b++;
                continue;
            }
            Py_ssize_t e = b + 1; /* the part [b, e) runs until the next part starts or a non-alphanumeric byte */
            while (e < run_end && is_alnum_byte(p[e]) && !starts_part(p, n, e))
                e++;
            if (found_add(f, owner, token_hash(p, b, e)) < 0)
                return -1;
            if (first < 0)
                first = b;
            last = e;
            parts++;
            b = e;
        }
        if (parts > 1 && found_add(f, owner, token_hash(p, first, last)) < 0)
            return -1;
    }
    return 0;
}

static PyObject *token_hashes(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *texts;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &texts))
        return NULL;
    Found found = {NULL, NULL, 0, 0};
    PyObject *result = NULL;
    for (Py_ssize_t t = 0; t < PyList_GET_SIZE(texts); t++) {
        PyObject *text = PyList_GET_ITEM(texts, t);
        if (!PyUnicode_Check(text)) {
            PyErr_Format(PyExc_TypeError, "texts[%zd] must be str, not %.80s", t, Py_TYPE(text)->tp_name);
            goto done;
        }
        if (!PyUnicode_IS_ASCII(text)) {
            PyErr_Format(PyExc_ValueError, "texts[%zd] must be ASCII", t);
            goto done;
        }
        if (text_tokens(&found, (int64_t)t, PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text)) < 0)
            goto done;
    }
    /* y# turns a NULL pointer into None: no tokens at all are two empty buffers */
    result = Py_BuildValue("(y#y#)", found.owners ? (const char *)found.owners : "",
                           found.used * (Py_ssize_t)sizeof(int64_t),
                           found.hashes ? (const char *)found.hashes : "", found.used * (Py_ssize_t)sizeof(uint64_t));
done:
    PyMem_Free(found.owners);
    PyMem_Free(found.hashes);
    return result;
}

static PyMethodDef methods[] = {
    {"document", document, METH_VARARGS,
     "document(content, named, located, text) -> bytes | str\n\n"
     "The tsvector of ASCII `content`, the terms of the symbol (`named`: term -> count) and of the path\n"
     "(`located`) first: binary as lexical.document gives it, or text as lexical.document_text does."},
    {"counted_terms", counted_terms, METH_VARARGS,
     "counted_terms(text) -> dict[str, int]\n\n"
     "The terms of ASCII `text` and how often each occurs, in order of first occurrence: lexical._fixed_terms."},
    {"token_hashes", token_hashes, METH_VARARGS,
     "token_hashes(texts) -> (bytes, bytes)\n\n"
     "The hashing embedder's tokens of ASCII `texts`, as token_hashing._ascii_tokens finds and hashes them:\n"
     "each token's text index (int64) and its hash (uint64), native byte order, in no particular order."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, .m_name = "_lexemes", .m_size = 0, .m_methods = methods};

/* What lexical.py checks (LEXEMES_API) before using this module: a .so built from an older _lexemes.c
 * (an editable install not rebuilt after a pull) is then left unused rather than called with other
 * arguments. Raise both when the arguments or the results change. */
#define API_VERSION 2

PyMODINIT_FUNC PyInit__lexemes(void) {
    init_classes();
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "API_VERSION", API_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
