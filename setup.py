"""Everything but this lives in pyproject.toml: lexical.document's C code (domain/_lexemes.c).

`optional=True`: where no C compiler is found the install still succeeds, and domain/lexical.py's
Python code, the reference the C code is tested against, builds every document.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("domain._lexemes", ["domain/_lexemes.c"], optional=True)])
