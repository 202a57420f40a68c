/* The logical lines of Python source, for the chunker: `outline.logical_lines` in C.
 *
 * Python's definitions are statements, and its statements are lines: a definition's extent follows
 * from the indentation of the logical lines after it. A logical line ends at a newline outside
 * brackets, strings and backslash continuations; a comment-only line is a line of its own. For each,
 * the scanner gives its first and last row, its indentation (a tab to the next multiple of 8), what
 * it starts with (a def, a class, a decorator, a comment, a clause of the compound statement above it:
 * elif, else, except, finally; anything else) and, for a def or class, the
 * byte range of its name. domain/outline.py builds the statement tree the chunker walks from these,
 * where tree-sitter's parse of the whole file cost ~5x more than everything else chunking does.
 *
 * The same records as outline.py's Python scanner, which stays the reference (and the path where
 * this module was not built): tests/unit/test_outline.py compares the two.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { OTHER = 0, DEF = 1, CLASS = 2, DECORATOR = 3, COMMENT = 4, CLAUSE = 5 };
enum { FIELDS = 6 }; /* first_row, last_row, indent, kind, name_start, name_end */

typedef struct {
    int32_t *data;
    Py_ssize_t used, size;
} Records;

static int put(Records *r, int32_t first, int32_t last, int32_t indent, int32_t kind, int32_t name_start,
               int32_t name_end) {
    if (r->used + FIELDS > r->size) {
        Py_ssize_t size = r->size ? 2 * r->size : 1024;
        int32_t *data = PyMem_Realloc(r->data, (size_t)size * sizeof(int32_t));
        if (!data) {
            PyErr_NoMemory();
            return -1;
        }
        r->data = data;
        r->size = size;
    }
    int32_t *w = r->data + r->used;
    w[0] = first, w[1] = last, w[2] = indent, w[3] = kind, w[4] = name_start, w[5] = name_end;
    r->used += FIELDS;
    return 0;
}

/* Identifier bytes: ASCII letters, digits, underscore, and every non-ASCII byte (UTF-8 letters). */
static inline int is_name(unsigned char c) {
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

/* Whether p[i:] starts with the keyword `word` followed by a non-identifier byte. */
static int keyword(const unsigned char *p, Py_ssize_t n, Py_ssize_t i, const char *word) {
    Py_ssize_t k = (Py_ssize_t)strlen(word);
    return i + k <= n && memcmp(p + i, word, (size_t)k) == 0 && (i + k == n || !is_name(p[i + k]));
}

static Py_ssize_t skip_blanks(const unsigned char *p, Py_ssize_t n, Py_ssize_t i) {
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\f'))
        i++;
    return i;
}

/* A string starting at p[i] (its quote; the prefix is already behind): the index after it, counting the
 * rows it spans. An unterminated one-line string ends at its newline, as a tokenizer recovers. */
static Py_ssize_t skip_string(const unsigned char *p, Py_ssize_t n, Py_ssize_t i, int32_t *row) {
    unsigned char quote = p[i];
    int triple = i + 2 < n && p[i + 1] == quote && p[i + 2] == quote;
    i += triple ? 3 : 1;
    while (i < n) {
        unsigned char c = p[i];
        if (c == '\\' && i + 1 < n) {
            if (p[i + 1] == '\n')
                (*row)++;
            i += 2;
        } else if (c == quote && (!triple || (i + 2 < n && p[i + 1] == quote && p[i + 2] == quote))) {
            return i + (triple ? 3 : 1);
        } else if (c == '\n') {
            if (!triple)
                return i;
            (*row)++;
            i++;
        } else {
            i++;
        }
    }
    return n;
}

static PyObject *logical_lines(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer source;
    if (!PyArg_ParseTuple(args, "y*", &source))
        return NULL;
    const unsigned char *p = source.buf;
    Py_ssize_t n = source.len, i = 0;
    Records records = {NULL, 0, 0};
    PyObject *result = NULL;
    if (n > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "source longer than 2 GiB");
        goto done;
    }
    int32_t row = 0;
    while (i < n) {
        int32_t indent = 0;
        for (; i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\f'); i++)
            indent = p[i] == ' ' ? indent + 1 : p[i] == '\t' ? (indent / 8 + 1) * 8 : 0;
        if (i >= n)
            break;
        if (p[i] == '\n') { /* a blank line */
            row++;
            i++;
            continue;
        }
        if (p[i] == '#') {
            if (put(&records, row, row, indent, COMMENT, -1, -1) < 0)
                goto done;
            while (i < n && p[i] != '\n')
                i++;
            continue;
        }
        int32_t first = row, kind = OTHER, name_start = -1, name_end = -1;
        Py_ssize_t at = i;
        if (keyword(p, n, at, "async"))
            at = skip_blanks(p, n, at + 5);
        if (keyword(p, n, at, "def") || keyword(p, n, i, "class")) {
            kind = keyword(p, n, i, "class") ? CLASS : DEF;
            Py_ssize_t s = skip_blanks(p, n, at + (kind == CLASS ? 5 : 3)), e = s;
            while (e < n && is_name(p[e]))
                e++;
            name_start = (int32_t)s, name_end = (int32_t)e;
        } else if (p[i] == '@') {
            kind = DECORATOR;
        } else if (keyword(p, n, i, "elif") || keyword(p, n, i, "else") || keyword(p, n, i, "except") ||
                   keyword(p, n, i, "finally")) {
            kind = CLAUSE; /* a clause of the compound statement above, not a statement of its own */
        }
        int depth = 0;
        while (i < n) {
            unsigned char c = p[i];
            if (c == '#') {
                while (i < n && p[i] != '\n')
                    i++;
            } else if (c == '"' || c == '\'') {
                i = skip_string(p, n, i, &row);
            } else if (c == '\\' && i + 1 < n && p[i + 1] == '\n') {
                row++;
                i += 2;
            } else if (c == '\n') {
                i++;
                if (depth == 0)
                    break;
                row++;
            } else {
                if (c == '(' || c == '[' || c == '{')
                    depth++;
                else if ((c == ')' || c == ']' || c == '}') && depth > 0)
                    depth--;
                i++;
            }
        }
        if (put(&records, first, row, indent, kind, name_start, name_end) < 0)
            goto done;
        row++;
    }
    result = PyBytes_FromStringAndSize(records.data ? (const char *)records.data : "",
                                       records.used * (Py_ssize_t)sizeof(int32_t));
done:
    PyMem_Free(records.data);
    PyBuffer_Release(&source);
    return result;
}

static PyMethodDef methods[] = {
    {"logical_lines", logical_lines, METH_VARARGS,
     "logical_lines(source: bytes) -> bytes\n\n"
     "The logical lines of Python source as int32 records (native order) of six fields: first row, last\n"
     "row, indentation, kind (0 other, 1 def, 2 class, 3 decorator, 4 comment, 5 elif/else/except/finally\n"
     "clause), name start and end bytes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, .m_name = "_outline", .m_size = 0, .m_methods = methods};

/* What outline.py checks (OUTLINE_API) before using this module; raise both when the records change. */
#define API_VERSION 1

PyMODINIT_FUNC PyInit__outline(void) {
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "API_VERSION", API_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
