"""Cognitive complexity (SonarSource, G. Ann Campbell 2017) and maximum nesting, on Python's ast.

A small visitor instead of a dependency. Increments, as in the white paper:

* +1 plus the current nesting for ``if``, ternaries, ``for``, ``while``, ``except``, ``match``;
* +1 (no nesting) for ``elif`` and ``else`` of an ``if``;
* +1 for each sequence of like boolean operators (``a and b and c`` is 1, ``a and b or c`` 2);
* +1 for a direct recursive call.

Nesting grows inside those structures and inside nested functions and lambdas (a method's
body starts at 0). ``max_nesting`` is the deepest nesting of compound statements of any kind
(def, class, if, for, while, with, try, match), a plainer "how indented does it get".
"""

from __future__ import annotations

import ast

_COMPOUND = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.AsyncFor,
             ast.While, ast.With, ast.AsyncWith, ast.Try, ast.Match)


class CognitiveVisitor(ast.NodeVisitor):
    """Adds up the cognitive complexity of everything it visits."""

    def __init__(self) -> None:
        self.total = 0
        self.nesting = 0
        self.functions: list[str] = []

    def _nested(self, nodes) -> None:
        self.nesting += 1
        for node in nodes:
            self.visit(node)
        self.nesting -= 1

    def visit_If(self, node: ast.If, elif_: bool = False) -> None:
        self.total += 1 if elif_ else 1 + self.nesting
        self.visit(node.test)
        self._nested(node.body)
        orelse = node.orelse
        if orelse and _is_elif(node, orelse[0]):
            self.visit_If(orelse[0], elif_=True)  # an elif sits at the if's own column
        elif orelse:
            self.total += 1
            self._nested(orelse)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self.total += 1 + self.nesting
        self.visit(node.test)
        self._nested([node.body, node.orelse])

    def _loop(self, node) -> None:
        self.total += 1 + self.nesting
        self.visit(node.target if hasattr(node, "target") else node.test)
        if hasattr(node, "iter"):
            self.visit(node.iter)
        self._nested(node.body)
        self._nested(node.orelse)

    visit_For = visit_AsyncFor = visit_While = _loop

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        self.total += 1 + self.nesting
        self._nested(node.body)

    def visit_Match(self, node: ast.Match) -> None:
        self.total += 1 + self.nesting
        self.visit(node.subject)
        self._nested(node.cases)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        self.total += 1
        for value in node.values:
            # ``a and (b and c)``: the same operator continues the sequence.
            if isinstance(value, ast.BoolOp) and type(value.op) is type(node.op):
                for inner in value.values:
                    self.visit(inner)
            else:
                self.visit(value)

    def _function(self, node) -> None:
        nested = bool(self.functions)
        self.functions.append(getattr(node, "name", "<lambda>"))
        saved = self.nesting
        self.nesting = saved + 1 if nested else 0
        self.generic_visit(node)
        self.nesting = saved
        self.functions.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        # A class body is not nesting, and methods start again at 0.
        saved, self.functions = self.functions, []
        self.generic_visit(node)
        self.functions = saved

    def visit_Call(self, node: ast.Call) -> None:
        if (self.functions and isinstance(node.func, ast.Name)
                and node.func.id == self.functions[-1]):
            self.total += 1
        self.generic_visit(node)


def cognitive_complexity(tree: ast.AST) -> int:
    """The cognitive complexity of a parsed module (all of its code)."""
    visitor = CognitiveVisitor()
    visitor.visit(tree)
    return visitor.total


def max_nesting(tree: ast.AST) -> int:
    """The deepest nesting of compound statements (a top-level ``def`` is depth 1).

    An ``elif`` is at its ``if``'s depth, though ast nests it in the ``orelse``.
    """
    deepest = 0
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, _COMPOUND):
            depth += 1
            deepest = max(deepest, depth)
        for child in ast.iter_child_nodes(node):
            stack.append((child, depth - 1 if _is_elif(node, child) else depth))
    return deepest


def _is_elif(parent: ast.AST, child: ast.AST) -> bool:
    return (isinstance(parent, ast.If) and isinstance(child, ast.If)
            and len(parent.orelse) == 1 and parent.orelse[0] is child
            and child.col_offset == parent.col_offset and child.lineno != parent.lineno)
