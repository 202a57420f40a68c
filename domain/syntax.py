"""tree-sitter grammars, loaded from wheels installed with the package (never downloaded), and
what counts as a definition in each language.

Each grammar is its own PyPI package (`tree-sitter-python`, `tree-sitter-typescript`, ...) with
the compiled parser inside; `Language(module.language())` loads it offline. A grammar whose wheel
is missing is reported as such by `parser_for`, and the chunker falls back to line windows.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

#: language name (as `discovery.language_for` gives it) -> (module, function returning the grammar)
GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "csharp": ("tree_sitter_c_sharp", "language"),
    "ruby": ("tree_sitter_ruby", "language"),
    "php": ("tree_sitter_php", "language_php"),
    "kotlin": ("tree_sitter_kotlin", "language"),
    "swift": ("tree_sitter_swift", "language"),
    "scala": ("tree_sitter_scala", "language"),
    "bash": ("tree_sitter_bash", "language"),
}

_CLASSY = {"class", "interface", "struct", "enum", "trait", "impl", "module", "namespace", "object", "record"}


@dataclass(frozen=True)
class LanguageSpec:
    """Node types that are definitions (type -> kind) and how qualified names are joined."""

    definitions: dict[str, str]
    separator: str = "."
    #: Nodes that wrap a definition and belong to its text (decorators, `export`, `template<>`).
    wrappers: frozenset[str] = field(default_factory=frozenset)
    #: Where the grammar puts statements, when definitions are statements and can lie nowhere else
    #: (Python): the chunker then descends only into these, definitions and wrappers, never into
    #: expressions, and needs no query over the whole tree (`definition_paths`). None: ask the query.
    holders: frozenset[str] | None = None

    def may_hold(self) -> frozenset[str] | None:
        """Node types worth descending into for definitions, or None (`definition_paths` decides)."""
        if self.holders is None:
            return None
        return self.holders | self.wrappers | frozenset(self.definitions)


_JS_DEFS = {
    "function_declaration": "function", "generator_function_declaration": "function",
    "class_declaration": "class", "method_definition": "method", "lexical_declaration": "function",
    "variable_declaration": "function",
}
_TS_DEFS = _JS_DEFS | {
    "abstract_class_declaration": "class", "interface_declaration": "interface",
    "type_alias_declaration": "type", "enum_declaration": "enum", "internal_module": "namespace",
    "module": "namespace", "function_signature": "function",
}
# Python's statement bodies and compound statements, and ERROR (a definition may sit in an unparsed
# stretch). The chunks of the standard library (including its Python 2 test data) are the same as
# with `definition_paths` (tests/unit/test_chunking.py), at ~8 us less a chunk (docs/benchmarks.md, B1).
_PYTHON_STATEMENTS = frozenset({
    "block", "if_statement", "elif_clause", "else_clause", "try_statement", "except_clause",
    "except_group_clause", "finally_clause", "with_statement", "for_statement", "while_statement",
    "match_statement", "case_clause", "ERROR",
    "compound_statement",  # domain/outline.py's name for any of these
})
_C_DEFS = {"function_definition": "function", "struct_specifier": "struct", "enum_specifier": "enum",
           "union_specifier": "struct", "type_definition": "type"}

SPECS: dict[str, LanguageSpec] = {
    "python": LanguageSpec({"function_definition": "function", "class_definition": "class"},
                           wrappers=frozenset({"decorated_definition"}), holders=_PYTHON_STATEMENTS),
    "javascript": LanguageSpec(_JS_DEFS, wrappers=frozenset({"export_statement"})),
    "typescript": LanguageSpec(_TS_DEFS, wrappers=frozenset({"export_statement"})),
    "tsx": LanguageSpec(_TS_DEFS, wrappers=frozenset({"export_statement"})),
    "go": LanguageSpec({"function_declaration": "function", "method_declaration": "method",
                        "type_declaration": "type"}),
    "rust": LanguageSpec({"function_item": "function", "impl_item": "impl", "struct_item": "struct",
                          "enum_item": "enum", "trait_item": "trait", "mod_item": "module",
                          "macro_definition": "macro", "union_item": "struct"}, separator="::"),
    "java": LanguageSpec({"class_declaration": "class", "interface_declaration": "interface",
                          "enum_declaration": "enum", "record_declaration": "record",
                          "method_declaration": "method", "constructor_declaration": "method",
                          "annotation_type_declaration": "interface"}),
    "c": LanguageSpec(_C_DEFS),
    "cpp": LanguageSpec(_C_DEFS | {"class_specifier": "class", "namespace_definition": "namespace"},
                        separator="::", wrappers=frozenset({"template_declaration"})),
    "csharp": LanguageSpec({"class_declaration": "class", "interface_declaration": "interface",
                            "struct_declaration": "struct", "enum_declaration": "enum",
                            "record_declaration": "record", "method_declaration": "method",
                            "constructor_declaration": "method", "namespace_declaration": "namespace",
                            "file_scoped_namespace_declaration": "namespace"}),
    "ruby": LanguageSpec({"method": "method", "singleton_method": "method", "class": "class",
                          "module": "module"}),
    "php": LanguageSpec({"function_definition": "function", "method_declaration": "method",
                         "class_declaration": "class", "interface_declaration": "interface",
                         "trait_declaration": "trait", "enum_declaration": "enum"}),
    "kotlin": LanguageSpec({"function_declaration": "function", "class_declaration": "class",
                            "object_declaration": "object"}),
    "swift": LanguageSpec({"function_declaration": "function", "class_declaration": "class",
                           "protocol_declaration": "interface", "init_declaration": "method"}),
    "scala": LanguageSpec({"function_definition": "function", "class_definition": "class",
                           "object_definition": "object", "trait_definition": "trait"}),
    "bash": LanguageSpec({"function_definition": "function"}),
}

_NAME_TYPES = {"identifier", "type_identifier", "constant", "simple_identifier", "field_identifier",
               "property_identifier", "name", "word", "scope_resolution", "qualified_identifier"}
_FUNCTION_VALUES = {"arrow_function", "function_expression", "function", "generator_function", "class"}

_lock = threading.Lock()
log = logging.getLogger(__name__)


@lru_cache(maxsize=None)
def _language(name: str) -> Any:
    import tree_sitter

    module_name, function = GRAMMARS[name]
    module = importlib.import_module(module_name)
    return tree_sitter.Language(getattr(module, function)())


def parser_for(language: str) -> Any | None:
    """A new tree-sitter Parser for `language`, or None when it has no grammar here.

    Raises:
        ImportError: the grammar's wheel is not installed (a broken install, not a user error).
    """
    if language not in GRAMMARS:
        return None
    import tree_sitter

    with _lock:  # Language objects are shared; loading them once is not thread-safe in lru_cache
        grammar = _language(language)
    return tree_sitter.Parser(grammar)


@lru_cache(maxsize=None)
def _definition_query(language: str) -> Any | None:
    """A query capturing every node of a definition or wrapper type; None if the grammar lacks one."""
    import tree_sitter

    spec = SPECS[language]
    with _lock:
        grammar = _language(language)
    pattern = " ".join(f"({kind}) @found" for kind in sorted(set(spec.definitions) | spec.wrappers))
    try:
        return tree_sitter.Query(grammar, pattern)
    except tree_sitter.QueryError:
        log.warning("no definition query for %s; walking its whole syntax trees", language)
        return None


def definition_paths(language: str, root: Any) -> set[int] | None:
    """Ids of the nodes that are, or lie above, a node of a definition or wrapper type: the only
    subtrees in which a definition can be found. The query runs in C; walking every node of a file
    in Python (expressions, literals) took most of the chunking time. None: walk everything."""
    import tree_sitter

    query = _definition_query(language)
    if query is None:
        return None
    paths: set[int] = set()
    for found in tree_sitter.QueryCursor(query).captures(root).get("found", []):
        node: Any = found
        while node is not None and node.id not in paths:
            paths.add(node.id)
            node = node.parent
    return paths


def is_classy(kind: str | None) -> bool:
    """Whether definitions of this kind hold other definitions (methods of a class, fns of an impl)."""
    return kind in _CLASSY


def definition(node: Any, spec: LanguageSpec, source: bytes) -> tuple[str, str, Any] | None:
    """(kind, name, inner node) when `node` is a definition (perhaps wrapped), else None."""
    inner = node
    while inner.type in spec.wrappers:
        found = [c for c in inner.named_children if c.type in spec.definitions or c.type in spec.wrappers]
        if not found:
            return None
        inner = found[-1]
    kind = spec.definitions.get(inner.type)
    if kind is None:
        return None
    if inner.type in ("lexical_declaration", "variable_declaration"):
        return _js_variable(inner, source)
    name = _name(inner, source)
    if inner.type == "impl_item":
        trait, target = inner.child_by_field_name("trait"), inner.child_by_field_name("type")
        name = "impl " + (f"{_plain(_text(trait, source))} for " if trait is not None else "") + (
            _plain(_text(target, source)) if target is not None else "?")
    elif inner.type == "method_declaration" and inner.child_by_field_name("receiver") is not None:
        receiver = _go_receiver(inner.child_by_field_name("receiver"), source)  # Go
        name = f"{receiver}.{name}" if receiver else name
    elif inner.type == "class_declaration" and (declared := inner.child_by_field_name("declaration_kind")):
        kind = {"struct": "struct", "enum": "enum", "extension": "class"}.get(_text(declared, source), kind)
    if not name:
        return None if kind in ("type", "struct", "enum") else (kind, "<anonymous>", inner)
    return kind, name, inner


def _js_variable(node: Any, source: bytes) -> tuple[str, str, Any] | None:
    """`const parse = (x) => ...` is a function definition named `parse`; other variables are not."""
    for declarator in node.named_children:
        if declarator.type != "variable_declarator":
            continue
        value = declarator.child_by_field_name("value")
        name = declarator.child_by_field_name("name")
        if value is not None and name is not None and value.type in _FUNCTION_VALUES:
            return ("class" if value.type == "class" else "function"), _text(name, source), node
    return None


def _go_receiver(receiver: Any, source: bytes) -> str:
    for param in receiver.named_children:
        type_node = param.child_by_field_name("type")
        if type_node is not None:
            return _plain(_text(type_node, source).lstrip("*"))
    return ""


_TYPE_ARGUMENTS = re.compile(r"<[^<>]*>|\[[^\[\]]*\]")
_LIFETIME = re.compile(r"'\w+\s*")
_REFERENCE = re.compile(r"^(?:&\s*|mut\s+|dyn\s+)+")


def _plain(type_text: str) -> str:
    """A type without its type arguments: `PeekNth<I>` -> PeekNth, Go's `List[K, V]` -> List. Symbols
    are joined by ", " where chunks are merged, so a name must not hold one; nor would a query name
    the arguments."""
    while (bare := _TYPE_ARGUMENTS.sub("", type_text)) != type_text:
        type_text = bare
    return " ".join(_LIFETIME.sub("", type_text).split())


def member_scope(symbol: str, kind: str, separator: str) -> str:
    """What the members of definition `symbol` are qualified by: the definition itself, but the type
    for a Rust impl, whose methods are `PeekNth::next` (as Rust writes them) rather than
    `impl Iterator for PeekNth::next` (`impl IntoIterator for &GroupBy`: GroupBy); the impl's own
    chunk keeps its name."""
    if kind != "impl" or not symbol.rpartition(separator)[2].startswith("impl "):
        return symbol
    outer, sep, impl = symbol.rpartition(separator)
    return outer + sep + _REFERENCE.sub("", impl.removeprefix("impl ").rpartition(" for ")[2])


def _name(node: Any, source: bytes) -> str:
    named = node.child_by_field_name("name")
    if named is None:
        declarator = node.child_by_field_name("declarator")  # C/C++: dig to the declared name
        while declarator is not None and declarator.child_by_field_name("declarator") is not None:
            declarator = declarator.child_by_field_name("declarator")
        named = declarator
    if named is None and node.type == "type_declaration":  # Go: type Foo struct {...}
        spec = next((c for c in node.named_children if c.type in ("type_spec", "type_alias")), None)
        named = spec.child_by_field_name("name") if spec is not None else None
    if named is None:
        named = next((c for c in node.named_children if c.type in _NAME_TYPES), None)
    return _text(named, source) if named is not None else ""


def _text(node: Any, source: bytes) -> str:
    return " ".join(source[node.start_byte:node.end_byte].decode("utf-8", "replace").split())[:200]
