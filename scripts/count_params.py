"""List the functions under genreid/ that take more than 8 parameters (the project's limit).

self/cls are not counted; *args and **kwargs count as one each. Run from the repository root:
``python scripts/count_params.py``; prints one line per function (count, file:line, name), marking the
documented exceptions (their docstrings say why), then the total and the number beyond the exceptions.
Exits 1 when a function beyond the exceptions exceeds the limit.
"""

from __future__ import annotations

import ast
import pathlib

LIMIT = 8
# torchreid/FastReID users call evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank) as written;
# the reference loops take the same arguments so that tests call both alike
EXCEPTIONS = {("genreid/evaluation/rank.py", "evaluate_rank"),
              ("genreid/evaluation/reference.py", "evaluate_rank_reference")}


def parameter_count(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = node.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
    return len(names) + (1 if a.vararg else 0) + (1 if a.kwarg else 0)


def main() -> int:
    rows = []
    for path in sorted(pathlib.Path("genreid").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and parameter_count(node) > LIMIT:
                allowed = (path.as_posix(), node.name) in EXCEPTIONS
                rows.append((parameter_count(node), f"{path}:{node.lineno}", node.name, allowed))
    for count, where, name, allowed in sorted(rows, reverse=True):
        print(count, where, name, "(documented exception)" if allowed else "")
    beyond = sum(not allowed for *_, allowed in rows)
    print(f"{len(rows)} over {LIMIT}, {beyond} beyond the documented exceptions")
    return 1 if beyond else 0


if __name__ == "__main__":
    raise SystemExit(main())
