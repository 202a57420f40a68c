# The C module of domain/_outline.c (built where a C compiler is; see outline.logical_lines).
API_VERSION: int

def logical_lines(source: bytes) -> bytes: ...
