"""Static analysis of a submission, before anything runs: is the work the student's own?

Two scans, on the source only:

- ``scan_answer`` looks at an exercise's answer cell: a syntax error; an import of the course
  package; a call the prompt rules out (``torch.softmax`` in a softmax exercise) or the
  chapter's own function doing the work (``attention`` in the attention exercise); an answer
  bound to another function (``attention_answer = attention``) instead of written; indexing
  an argument the prompt says not to index.
- ``scan_cell`` looks at every other cell the student wrote or changed (cells identical to
  the book's are the book's): tools for tampering with the grader's process, whatever their
  purpose: tracing hooks, frame and garbage-collector walks, input transformers, patching an
  imported module's attributes (``json.dumps = ...``), ``exec``, ``sys.modules``, raw file
  descriptors, signals, ``ctypes``, ``__torch_function__``.

The grader runs each answer in a sandbox anyway and compares plain data in its own process;
these scans name what a student did, so a teacher reads "uses torch.softmax, which the prompt
rules out" rather than a bare fail, and they close the doors the sandbox cannot (code that
rewrites the runner's own process).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

TAMPER_MODULES = {
    "ctypes",
    "gc",
    "inspect",
    "importlib",
    "builtins",
    "IPython",
    "signal",
    "code",
    "codeop",
    "threading",
    "multiprocessing",
    "_thread",
    "atexit",
    "pickle",
    "marshal",
    "types",
    "sys",
}
# Any use of sys beyond these attributes counts as tampering.
SYS_READ = {
    "version",
    "version_info",
    "float_info",
    "maxsize",
    "getsizeof",
    "stdout",
    "stderr",
    "argv",
    "platform",
    "executable",
}
TAMPER_ATTRS = {
    "settrace",
    "setprofile",
    "_getframe",
    "f_globals",
    "f_locals",
    "f_back",
    "f_builtins",
    "meta_path",
    "path_hooks",
    "input_transformers_post",
    "input_transformers_cleanup",
    "input_transformer_manager",
    "ast_transformers",
    "events",
    "__torch_function__",
    "__torch_dispatch__",
    "__code__",
    "__globals__",
    "__builtins__",
    "__subclasses__",
    "__closure__",
    "__file__",
    "__dict__",
    "__class__",
    "__bases__",
    "__mro__",
    "get_objects",
    "get_referrers",
    "cell_contents",
    "user_ns",
    "user_global_ns",
    "fdopen",
    "dup",
    "dup2",
    "setrlimit",
    "run_cell",
    "__module__",
    "__qualname__",
    "register_magic_function",
    "__loader__",
    "__spec__",
    "__getattribute__",
}
TAMPER_CALLS = {
    "exec",
    "eval",
    "compile",
    "__import__",
    "globals",
    "locals",
    "vars",
    "setattr",
    "delattr",
    "get_ipython",
    "breakpoint",
    "open",
}
TAMPER_DEFS = {
    "__torch_function__",
    "__torch_dispatch__",
    "__getattribute__",
    "__instancecheck__",
    "__subclasscheck__",
    "__init_subclass__",
    "__class_getitem__",
}


@dataclass
class Finding:
    kind: str  # "syntax error", "package", "forbidden", "alias", "tampering"
    message: str


def syntax_error(source: str, where: str = "the cell") -> Finding | None:
    """A syntax error in a code cell (IPython magics and shell lines are allowed)."""
    try:
        ast.parse(_python(source))
    except SyntaxError as error:
        line = (error.text or "").strip()
        return Finding(
            "syntax error",
            f"syntax error in {where}, line {error.lineno}: "
            f"{error.msg}" + (f" ({line[:60]})" if line else ""),
        )
    return None


def _python(source: str) -> str:
    """The cell as Python: IPython's %magic and !shell lines become ``pass``."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            lines.append(line[: len(line) - len(stripped)] + "pass")
        else:
            lines.append(line)
    return "\n".join(lines)


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _root(node: ast.AST) -> str:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else ""


def imported_names(sources: list[str]) -> set[str]:
    """Names bound by import statements anywhere in ``sources`` (modules and their members)."""
    names = set()
    for source in sources:
        try:
            tree = ast.parse(_python(source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def scan_cell(source: str, modules: set[str], where: str) -> list[Finding]:
    """Tampering tools in a cell the student wrote. ``modules``: names bound by imports."""
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return []  # reported where it matters: an answer cell's own syntax error
    found = []

    def flag(node, what):
        found.append(
            Finding(
                "tampering",
                f"{where}, line {getattr(node, 'lineno', '?')}: "
                f"{what} (not allowed in a graded notebook)",
            )
        )

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in TAMPER_MODULES - {"sys"}:
                    flag(node, f"imports {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            top = (node.module or "").split(".")[0]
            if top in TAMPER_MODULES:
                flag(node, f"imports from {node.module}")
            elif any(a.name in TAMPER_ATTRS or a.name in TAMPER_CALLS for a in node.names):
                flag(node, f"imports {', '.join(a.name for a in node.names)}")
        elif isinstance(node, ast.Attribute):
            if node.attr in TAMPER_ATTRS:
                flag(node, f"uses .{node.attr}")
            elif (
                isinstance(node.value, ast.Name)
                and node.value.id == "sys"
                and node.attr not in SYS_READ
            ):
                flag(node, f"uses sys.{node.attr}")
            elif (
                isinstance(node.value, ast.Name)
                and node.value.id == "os"
                and node.attr in {"write", "open", "read", "execv", "execve"}
            ):
                flag(node, f"uses os.{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in TAMPER_CALLS
        ):
            flag(node, f"calls {node.func.id}()")
        elif isinstance(node, ast.Name) and node.id in ("__builtins__", "__loader__"):
            flag(node, f"uses {node.id}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in TAMPER_DEFS:
            flag(node, f"defines {node.name}")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                if isinstance(target, (ast.Attribute, ast.Subscript)) and _root(target) in modules:
                    flag(
                        node,
                        f"changes {_dotted(target) or _root(target)}, part of an imported module",
                    )
    return found


def free_names(source: str) -> list[str]:
    """Names an answer cell reads but does not bind itself (what it takes from the notebook)."""
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return []
    bound, read = set(), []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            if not isinstance(node, ast.ClassDef):
                bound |= {
                    a.arg for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs
                }
                bound |= {a.arg for a in (node.args.vararg, node.args.kwarg) if a}
        elif isinstance(node, ast.Lambda):
            bound |= {a.arg for a in node.args.args}
        elif isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Store):
                bound.add(node.id)
            else:
                read.append(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return [n for n in dict.fromkeys(read) if n not in bound]


def scan_answer(
    source: str,
    answer_names: list[str],
    forbid: set[str],
    chapter: set[str],
    no_index: int | None,
    where: str,
) -> list[Finding]:
    """What is wrong with an answer cell before it runs (an empty list: nothing)."""
    error = syntax_error(source, where)
    if error:
        return [error]
    tree = ast.parse(_python(source))
    found: list[Finding] = []
    local = {
        n.name
        for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }
    exempt = set(answer_names) | local
    # Inside functions and lambdas (the answer and its helpers) every use counts; in the
    # cell's other statements (a demonstration, a comparison) only a reference that is not
    # a call, such as an alias: sm = torch.softmax.
    inner = {
        id(n)
        for f in ast.walk(tree)
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for n in ast.walk(f)
        if n is not f
    }
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            if (module or "").split(".")[0] == "llmcourse" and "exercises" not in (module or ""):
                found.append(
                    Finding(
                        "package",
                        f"{where} imports {module}: the answer must be "
                        "your own code, not the course package's",
                    )
                )
            continue
        if id(node) not in inner and id(node) in called:
            continue
        if isinstance(node, ast.Attribute) and node.attr in forbid:
            found.append(
                Finding(
                    "forbidden",
                    f"{where} uses {_dotted(node) or node.attr}, "
                    "which this exercise rules out: write it yourself",
                )
            )
        elif (
            isinstance(node, ast.Name)
            and isinstance(node.ctx, ast.Load)
            and node.id not in exempt
            and node.id in (forbid | chapter)
        ):
            found.append(
                Finding(
                    "forbidden",
                    f"{where} uses {node.id}, the chapter's (or the "
                    "package's) own version: write it yourself",
                )
            )
        elif (
            isinstance(node, ast.Call)
            and _dotted(node.func) == "getattr"
            and len(node.args) > 1
            and not (isinstance(node.args[1], ast.Constant) and node.args[1].value not in forbid)
        ):
            found.append(
                Finding(
                    "forbidden",
                    f"{where} looks up an attribute by a computed or ruled-out name (getattr)",
                )
            )
    for node in tree.body:  # answer = other_function: an alias, not an answer
        if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Name, ast.Attribute)):
            targets = {t.id for t in node.targets if isinstance(t, ast.Name)}
            for name in targets & set(answer_names):
                found.append(
                    Finding(
                        "alias",
                        f"{where} makes {name} another name for "
                        f"{_dotted(node.value)} instead of writing it",
                    )
                )
    if no_index is not None:
        for fn in (
            n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in answer_names
        ):
            params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
            if no_index < len(params):
                arg = params[no_index]
                for node in ast.walk(fn):
                    if (
                        isinstance(node, ast.Subscript)
                        and isinstance(node.value, ast.Name)
                        and node.value.id == arg
                    ):
                        found.append(
                            Finding(
                                "forbidden",
                                f"{where} indexes {arg} directly, which this exercise rules out",
                            )
                        )
                        break
    found += scan_cell(source, imported_names([source]), where)
    return found
