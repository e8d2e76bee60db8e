"""List the functions under genreid/ that take more than 8 parameters (the project's limit).

self/cls are not counted; *args and **kwargs count as one each. Run from the repository root:
``python scripts/count_params.py``; prints one line per function (count, file:line, name), then the total.
"""

from __future__ import annotations

import ast
import pathlib

LIMIT = 8


def parameter_count(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = node.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
    return len(names) + (1 if a.vararg else 0) + (1 if a.kwarg else 0)


def main() -> int:
    rows = []
    for path in pathlib.Path("genreid").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and parameter_count(node) > LIMIT:
                rows.append((parameter_count(node), f"{path}:{node.lineno}", node.name))
    for row in sorted(rows, reverse=True):
        print(*row)
    print(len(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
