"""Qualified names of imported symbols in one module, without libcst's full scope analysis.

libcst's ``QualifiedNameProvider`` answers "which imported name is this expression?" through
three metadata passes (expression context, scopes, qualified names) of libcst's visitor
machinery, which rebuilds every node it visits: about ten times the cost of parsing. The
ergonomics metrics only need the module's import table and the attribute chains that use
it, so :func:`scan` walks the parsed tree once, by hand, and records:

* the import table of every scope: ``import x``, ``import x.y`` (binds ``x.y`` and ``x``),
  ``import x.y as z``, ``from x import y as z``, relative imports (``from . import a`` is
  ``.a``, which never names a framework) and star imports (noted in ``star_imports``; like
  libcst, no name is resolved through them);
* every other binding that can shadow an imported name: assignments, ``for``/``with``/
  ``except`` targets, walrus targets, parameters, ``def`` and ``class`` names, in function,
  lambda, class and comprehension scopes, with ``global`` and ``nonlocal``;
* every use: each chain of names and attributes (``nn``, ``nn.functional.relu``) in its
  scope, every call and every class definition, by top-level statement (the unit of the
  phases).

Resolution follows ``QualifiedNameProvider`` rule for rule, including its lenient ones (a
name rebound at module level keeps its imported meaning too; ``del`` does not unbind; a
function-local access before the local assignment sees the enclosing import), so the two
agree on every name the metrics ask about (tests/analyzers/test_names.py compares them file
by file). Two differences are by design, because libcst's names there are wrong:

1. **Only a chain of plain names has a qualified name.** libcst names an attribute of a
   call's or a subscript's result after the callee: ``F.nll_loss(out, y).item()`` becomes
   ``torch.nn.functional.nll_loss.item``, and ``nn.Linear(2, 2)(x)`` a call of
   ``torch.nn.Linear``. Here ``.item`` of a returned value, a call of a call and a subscript
   have no qualified name (the inner ``F.nll_loss`` keeps its own).
2. **The name a ``def`` or ``class`` statement binds is not a use** of an import that
   happens to have the same name.
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

import libcst as cst

_LOAD, _STORE, _DEL = 0, 1, 2
_EMPTY: frozenset[str] = frozenset()
#: Fields of libcst nodes that never hold an expression or a statement (formatting).
_FORMAT_FIELDS = frozenset({
    "lpar", "rpar", "comma", "equal", "dot", "leading_lines", "lines_after_decorators",
    "header", "footer", "indent", "trailing_whitespace", "asynchronous", "lbracket",
    "rbracket", "lbrace", "rbrace", "colon", "semicolon", "operator", "encoding",
    "default_indent", "default_newline", "has_trailing_newline", "star", "conversion",
    "newline", "whitespace", "for_tok"})
_LEAVES = (cst.SimpleString, cst.Integer, cst.Float, cst.Imaginary, cst.Ellipsis, cst.Pass,
           cst.Break, cst.Continue, cst.EmptyLine, cst.Newline, cst.Comment)


def _child_fields(kind: type) -> tuple[str, ...]:
    if issubclass(kind, _LEAVES):
        return ()
    return tuple(f.name for f in dataclasses.fields(kind)
                 if f.name not in _FORMAT_FIELDS and not f.name.startswith("whitespace"))


#: Whether a type is a libcst node, by type: ``isinstance`` against libcst's abstract base
#: classes goes through ``ABCMeta.__instancecheck__``, a fifth of the scan's time.
_IS_NODE: dict[type, bool] = {}


def _is_node(value: object) -> bool:
    kind = type(value)
    known = _IS_NODE.get(kind)
    if known is None:
        known = _IS_NODE[kind] = issubclass(kind, cst.CSTNode)
    return known


_FIELDS: dict[type, tuple[str, ...]] = {}


# -- scopes: a port of libcst.metadata.scope_provider's rules, for what names need -------------

@dataclass(eq=False)
class _Binding:
    """One binding of ``name`` in ``scope``; ``imported``: (module, ((real, alias), ...))."""

    name: str
    scope: _Scope
    index: int
    imported: tuple[str, tuple[tuple[str, str | None], ...]] | None = None

    def qualified(self, full_name: str) -> set[str]:
        """Imported names ``full_name`` stands for through this binding (libcst's rules)."""
        if self.imported is None:
            return set()
        module, aliases = self.imported
        results: set[str] = set()
        for real_full, alias in aliases:
            parts = real_full.split(".")
            for i in range(len(parts), 0, -1):
                real = as_name = ".".join(parts[:i])
                if module and module.endswith("."):
                    real = f"{module}{real}"
                elif module:
                    real = f"{module}.{real}"
                if alias is not None:
                    as_name = alias
                if full_name.startswith(as_name):
                    rest = full_name.split(as_name, 1)[1]
                    if rest and not rest.startswith("."):
                        continue
                    rest = rest.lstrip(".")
                    results.add(f"{real}.{rest}" if rest else real)
                    break
        return results


@dataclass(eq=False)
class _Scope:
    kind: str  # builtin | global | function | class | comprehension
    parent: _Scope | None
    bindings: dict[str, list[_Binding]] = field(default_factory=dict)
    count: int = 0
    overwrites: dict[str, _Scope] = field(default_factory=dict)
    globals: _Scope | None = None
    #: ``name in scope`` answers, kept once the scan is over (:meth:`done`) and nothing binds:
    #: resolving asks the same names of the same scopes again and again.
    seen: dict[str, bool] | None = None

    def __post_init__(self) -> None:
        if self.parent is None:  # the builtins: its own parent, as in libcst
            self.parent = self
        elif self.kind == "global":
            self.globals = self
        else:
            self.globals = self.parent.globals

    def visible_parent(self, first: _Scope | None = None) -> _Scope:
        """The nearest enclosing scope whose names the code inside sees (not a class)."""
        parent = first if first is not None else self.parent
        assert parent is not None
        while parent.kind == "class":
            parent = parent.parent
            assert parent is not None
        return parent

    def __contains__(self, name: str) -> bool:
        seen = self.seen
        if seen is not None:
            known = seen.get(name)
            if known is None:
                known = seen[name] = self._contains(name)
            return known
        return self._contains(name)

    def _contains(self, name: str) -> bool:
        if self.kind == "builtin":
            return hasattr(builtins, name)
        if name in self.overwrites:
            return name in self.overwrites[name]
        if name in self.bindings:
            return bool(self.bindings[name])
        return name in self.visible_parent()

    def resolve(self, name: str) -> list[_Binding]:
        """Every binding ``name`` may refer to from this scope (libcst's ``scope[name]``)."""
        if self.kind == "builtin":
            if name not in self.bindings and hasattr(builtins, name):
                self.bindings[name] = [_Binding(name, self, -1)]
            return self.bindings.get(name, [])
        if name in self.overwrites:
            return self.visible_parent(self.overwrites[name]).resolve(name)
        if name in self.bindings:
            return self.bindings[name]
        return self.visible_parent().resolve(name)

    def target(self, name: str) -> _Scope:
        """The scope an assignment of ``name`` here binds in (``global``, ``nonlocal``)."""
        if name in self.overwrites:
            return self.visible_parent(self.overwrites[name]).target(name)
        return self

    def bind(self, name: str, imported=None) -> None:
        scope = self.target(name)
        assert scope.seen is None, "bound after the scan"
        scope.bindings.setdefault(name, []).append(
            _Binding(name, scope, scope.count, imported))


def _dotted(node: cst.CSTNode) -> Iterator[tuple[str, cst.CSTNode]]:
    """libcst's ``_gen_dotted_names``: ``a.b.c`` -> (``a.b.c``, node), (``a.b``, ...), ..."""
    if isinstance(node, cst.Name):
        yield node.value, node
        return
    if not isinstance(node, cst.Attribute):
        return
    value = node.value
    if isinstance(value, cst.Call):
        func = value.func
        if isinstance(func, (cst.Attribute, cst.Name)):
            yield from _dotted(func)
    elif isinstance(value, (cst.Attribute, cst.Name)):
        inner = _dotted(value)
        first = next(inner, None)
        if first is None:
            return
        yield f"{first[0]}.{node.attr.value}", node
        yield first
        yield from inner


def _full_name(node: cst.CSTNode) -> str | None:
    """``a.b.c`` for a chain of plain names; None otherwise (rule 1 of the module doc)."""
    parts = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if not isinstance(node, cst.Name):
        return None
    parts.append(node.value)
    return ".".join(reversed(parts))


# -- the module's names ------------------------------------------------------------------------

@dataclass
class ModuleNames:
    """What :func:`scan` found: uses by top-level statement, and the resolver of their names.

    ``chains``, ``calls`` and ``classes`` hold ``(statement, node)`` with ``statement`` the
    index of the top-level statement in ``module.body``; a chain is a tuple of nodes from the
    outermost attribute down to its first name (``nn.functional.relu``, ``nn.functional``,
    ``nn``).
    """

    chains: list[tuple[int, tuple[cst.CSTNode, ...]]] = field(default_factory=list)
    calls: list[tuple[int, cst.Call]] = field(default_factory=list)
    classes: list[tuple[int, cst.ClassDef]] = field(default_factory=list)
    #: Modules imported with ``from MODULE import *`` (dots for relative ones).
    star_imports: list[str] = field(default_factory=list)
    #: Every import binding: (bound name, qualified name), in source order.
    imports: list[tuple[str, str]] = field(default_factory=list)
    _accesses: list[tuple[cst.Name, _Scope, int, cst.CSTNode | None]] = field(
        default_factory=list, repr=False)
    _chain_scope: dict[int, tuple[_Scope, str]] = field(default_factory=dict, repr=False)
    _resolved: dict[int, frozenset[str]] | None = field(default=None, repr=False)

    def names(self, node: cst.CSTNode) -> frozenset[str]:
        """The imported qualified names ``node`` stands for (empty: none, or not a chain)."""
        if self._resolved is None:
            self._resolve_accesses()
        assert self._resolved is not None
        found = self._resolved.get(id(node))
        if found is not None:
            return found
        where = self._chain_scope.get(id(node))
        if where is None:
            return _EMPTY
        scope, full = where
        prefix: str | None = full
        bindings: list[_Binding] = []
        while prefix:
            if prefix in scope:
                bindings = scope.resolve(prefix)
                break
            cut = prefix.rfind(".")
            prefix = None if cut == -1 else prefix[:cut]
        return frozenset(q for b in bindings for q in b.qualified(full))

    def _resolve_accesses(self) -> None:
        """libcst's ``infer_accesses``: each access sees the bindings made before it in its own
        scope, else those of the enclosing scopes (all of them: code in a function runs later).
        """
        resolved: dict[int, set[str]] = {}
        for name_node, scope, index, enclosing in self._accesses:
            node: cst.CSTNode = name_node
            name = name_node.value
            if enclosing is not None:
                for dotted, dotted_node in _dotted(enclosing):
                    if dotted in scope:
                        node, name = dotted_node, dotted
                        break
            bindings = scope.resolve(name)
            previous = [b for b in bindings if b.scope is not scope or b.index < index]
            if not previous and bindings:
                assert scope.parent is not None
                previous = scope.parent.resolve(name)
            found = resolved.setdefault(id(node), set())
            for b in previous:
                found |= b.qualified(b.name)
        self._resolved = {k: frozenset(v) for k, v in resolved.items()}


class _Scanner:
    """One pass over a module: bindings per scope, accesses, uses (see ModuleNames)."""

    def __init__(self) -> None:
        self.out = ModuleNames()
        builtin = _Scope("builtin", None)
        self.scope = _Scope("global", builtin)
        self.scopes = [builtin, self.scope]  # every scope, for :meth:`module`
        self.enclosing: cst.CSTNode | None = None  # libcst's top-level attribute
        self.statement = 0
        self.special = {
            cst.Name: self._name, cst.Attribute: self._attribute, cst.Call: self._call,
            cst.Arg: self._arg, cst.Import: self._import, cst.ImportFrom: self._import,
            cst.FunctionDef: self._function, cst.Lambda: self._lambda,
            cst.ClassDef: self._class, cst.Param: self._param, cst.Parameters: self._parameters,
            cst.ListComp: self._comprehension, cst.SetComp: self._comprehension,
            cst.GeneratorExp: self._comprehension, cst.DictComp: self._comprehension,
            cst.CompFor: self._comp_for, cst.For: self._for, cst.Global: self._global,
            cst.Nonlocal: self._nonlocal, cst.Assign: self._assign,
            cst.AnnAssign: self._ann_assign, cst.AugAssign: self._aug_assign,
            cst.NamedExpr: self._named_expr, cst.AsName: self._as_name,
            cst.WithItem: self._with_item, cst.Del: self._del, cst.Subscript: self._subscript,
        }

    def module(self, module: cst.Module) -> ModuleNames:
        for i, stmt in enumerate(module.body):
            self.statement = i
            self.walk(stmt, _LOAD)
        for scope in self.scopes:  # the scan is over: no scope changes now
            scope.seen = {}
        return self.out

    def walk(self, node: cst.CSTNode, ctx: int) -> None:
        kind = type(node)
        handler = self.special.get(kind)
        if handler is not None:
            handler(node, ctx)
            return
        names = _FIELDS.get(kind)  # none for a leaf (_LEAVES)
        if names is None:
            names = _FIELDS[kind] = _child_fields(kind)
        for name in names:
            value = getattr(node, name)
            if _is_node(value):
                self.walk(value, ctx)
            elif isinstance(value, (tuple, list)):
                for item in value:
                    if _is_node(item):
                        self.walk(item, ctx)

    def _leave_binding(self) -> None:
        self.scope.count += 1  # libcst: leaving an assignment-like node

    # expressions

    def _name(self, node: cst.Name, ctx: int) -> None:
        if ctx == _STORE:
            self.scope.bind(node.value)
            return
        self.out._accesses.append((node, self.scope, self.scope.count, self.enclosing))
        self.out.chains.append((self.statement, (node,)))
        self.out._chain_scope[id(node)] = (self.scope, node.value)

    def _attribute(self, node: cst.Attribute, ctx: int) -> None:
        chain: list[cst.CSTNode] = [node]
        base = node.value
        while isinstance(base, cst.Attribute):
            chain.append(base)
            base = base.value
        saved = self.enclosing
        if saved is None:
            self.enclosing = node
        if isinstance(base, cst.Name):
            chain.append(base)
            full = _full_name(node)
            assert full is not None
            for part in chain:
                self.out._chain_scope[id(part)] = (self.scope, full)
                full = full.rsplit(".", 1)[0]
            self.out._accesses.append((base, self.scope, self.scope.count, self.enclosing))
            self.out.chains.append((self.statement, tuple(chain)))
        else:  # the attribute of a value that is not a name: a call's result, a subscript
            self.walk(node.value, _LOAD)
        self.enclosing = saved

    def _subscript(self, node: cst.Subscript, ctx: int) -> None:
        self.walk(node.value, _LOAD)
        for element in node.slice:
            self.walk(element, _LOAD)

    def _call(self, node: cst.Call, ctx: int) -> None:
        self.out.calls.append((self.statement, node))
        saved, self.enclosing = self.enclosing, None
        self.walk(node.func, _LOAD)
        for arg in node.args:
            self.walk(arg.value, _LOAD)
        self.enclosing = saved

    def _arg(self, node: cst.Arg, ctx: int) -> None:
        self.walk(node.value, ctx)  # a keyword's name is neither a binding nor a use

    # bindings

    def _import(self, node: cst.Import | cst.ImportFrom, ctx: int) -> None:
        module = ""
        if isinstance(node, cst.ImportFrom):
            module = _full_name(node.module) or "" if node.module is not None else ""
            module = "." * len(node.relative) + module
            if isinstance(node.names, cst.ImportStar):
                self.out.star_imports.append(module)
                self._leave_binding()
                return
        aliases = []
        for alias in node.names:
            real = _full_name(alias.name)
            name = alias.asname.name if alias.asname is not None else None
            evaluated = name.value if isinstance(name, cst.Name) else None
            if real:
                aliases.append((real, evaluated))
        imported = (module, tuple(aliases))
        for alias in node.names:
            if alias.asname is not None:
                bound = [alias.asname.name.value]  # type: ignore[union-attr]
            else:
                bound = [dotted for dotted, _ in _dotted(alias.name)]
            for name in bound:
                self.scope.bind(name, imported)
            real = _full_name(alias.name) or ""
            full = f"{module}{real}" if module.endswith(".") else (
                f"{module}.{real}" if module else real)
            self.out.imports.append((bound[0], full))
        self._leave_binding()

    def _in_scope(self, kind: str, walk) -> None:
        outer = self.scope
        self.scope = _Scope(kind, outer)
        self.scopes.append(self.scope)
        try:
            walk()
        finally:
            self.scope = outer

    def _function(self, node: cst.FunctionDef, ctx: int) -> None:
        self.scope.bind(node.name.value)
        if node.type_parameters is not None:
            self.walk(node.type_parameters, _LOAD)

        def inside() -> None:
            self.walk(node.params, _LOAD)
            self.walk(node.body, _LOAD)

        self._in_scope("function", inside)
        for decorator in node.decorators:
            self.walk(decorator.decorator, _LOAD)
        if node.returns is not None:
            self.walk(node.returns.annotation, _LOAD)
        self._leave_binding()

    def _lambda(self, node: cst.Lambda, ctx: int) -> None:
        def inside() -> None:
            self.walk(node.params, _LOAD)
            self.walk(node.body, _LOAD)

        self._in_scope("function", inside)

    def _parameters(self, node: cst.Parameters, ctx: int) -> None:
        for param in (*node.posonly_params, *node.params, *node.kwonly_params):
            self._param(param, ctx)
        for param in (node.star_arg, node.star_kwarg):
            if isinstance(param, cst.Param):
                self._param(param, ctx)
        self._leave_binding()

    def _param(self, node: cst.Param, ctx: int) -> None:
        self.scope.bind(node.name.value)
        inner = self.scope
        self.scope = inner.parent  # type: ignore[assignment]  # defaults: the enclosing scope
        try:
            if node.default is not None:
                self.walk(node.default, _LOAD)
            if node.annotation is not None:
                self.walk(node.annotation.annotation, _LOAD)
        finally:
            self.scope = inner

    def _class(self, node: cst.ClassDef, ctx: int) -> None:
        self.out.classes.append((self.statement, node))
        self.scope.bind(node.name.value)
        for decorator in node.decorators:
            self.walk(decorator.decorator, _LOAD)
        if node.type_parameters is not None:
            self.walk(node.type_parameters, _LOAD)
        for arg in (*node.bases, *node.keywords):
            self.walk(arg.value, _LOAD)

        def inside() -> None:
            for stmt in node.body.body:
                self.walk(stmt, _LOAD)

        self._in_scope("class", inside)
        self._leave_binding()

    def _comprehension(self, node, ctx: int) -> None:
        for_in = node.for_in
        self.walk(for_in.iter, _LOAD)

        def inside() -> None:
            self.walk(for_in.target, _STORE)
            self._leave_binding()
            for cond in for_in.ifs:
                self.walk(cond.test, _LOAD)
            if for_in.inner_for_in is not None:
                self.walk(for_in.inner_for_in, _LOAD)
            if isinstance(node, cst.DictComp):
                self.walk(node.key, _LOAD)
                self.walk(node.value, _LOAD)
            else:
                self.walk(node.elt, _LOAD)

        self._in_scope("comprehension", inside)

    def _comp_for(self, node: cst.CompFor, ctx: int) -> None:
        self.walk(node.target, _STORE)
        self.walk(node.iter, _LOAD)
        for cond in node.ifs:
            self.walk(cond.test, _LOAD)
        if node.inner_for_in is not None:
            self.walk(node.inner_for_in, _LOAD)
        self._leave_binding()

    def _for(self, node: cst.For, ctx: int) -> None:
        self.walk(node.target, _STORE)
        self._leave_binding()
        self.walk(node.iter, _LOAD)
        self.walk(node.body, _LOAD)
        if node.orelse is not None:
            self.walk(node.orelse, _LOAD)

    def _global(self, node: cst.Global, ctx: int) -> None:
        if self.scope.kind != "global":
            for item in node.names:
                self.scope.overwrites[item.name.value] = self.scope.globals  # type: ignore
        self._leave_binding()

    def _nonlocal(self, node: cst.Nonlocal, ctx: int) -> None:
        for item in node.names:
            self.scope.overwrites[item.name.value] = self.scope.parent  # type: ignore
        self._leave_binding()

    def _assign(self, node: cst.Assign, ctx: int) -> None:
        for target in node.targets:
            self.walk(target.target, _STORE)
        self.walk(node.value, _LOAD)
        self._leave_binding()

    def _ann_assign(self, node: cst.AnnAssign, ctx: int) -> None:
        self.walk(node.target, _STORE)
        self.walk(node.annotation.annotation, _LOAD)
        if node.value is not None:
            self.walk(node.value, _LOAD)
        self._leave_binding()

    def _aug_assign(self, node: cst.AugAssign, ctx: int) -> None:
        self.walk(node.target, _STORE)
        self.walk(node.value, _LOAD)
        self._leave_binding()

    def _named_expr(self, node: cst.NamedExpr, ctx: int) -> None:
        self.walk(node.target, _STORE)
        self.walk(node.value, _LOAD)
        self._leave_binding()

    def _as_name(self, node: cst.AsName, ctx: int) -> None:
        self.walk(node.name, _STORE)
        self._leave_binding()

    def _with_item(self, node: cst.WithItem, ctx: int) -> None:
        self.walk(node.item, _LOAD)
        if node.asname is not None:
            self.walk(node.asname, _LOAD)
        self._leave_binding()

    def _del(self, node: cst.Del, ctx: int) -> None:
        self.walk(node.target, _DEL)  # an access, as in libcst: del does not unbind


def scan(module: cst.Module) -> ModuleNames:
    """The uses of names in ``module`` and the resolver of their qualified names."""
    return _Scanner().module(module)
