"""Everything but this lives in pyproject.toml: the C code of lexical.document and the hashing
embedder's tokens (domain/_lexemes.c) and of Python's logical lines for the chunker (domain/_outline.c).

`optional=True`: where no C compiler is found the install still succeeds, and the Python code
(lexical.py, token_hashing.py, outline.py), the reference the C code is tested against, does the same
work.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("domain._lexemes", ["domain/_lexemes.c"], optional=True),
                   Extension("domain._outline", ["domain/_outline.c"], optional=True)])
