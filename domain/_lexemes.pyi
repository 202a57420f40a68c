# The C module of domain/_lexemes.c (built where a C compiler is; see lexical.document).
from collections.abc import Mapping
from typing import Literal, overload

API_VERSION: int

@overload
def document(content: str, named: Mapping[str, int], located: Mapping[str, int], text: Literal[False]) -> bytes: ...
@overload
def document(content: str, named: Mapping[str, int], located: Mapping[str, int], text: Literal[True]) -> str: ...
