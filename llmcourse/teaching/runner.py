"""What runs inside the sandbox: one submission's cells, and each answer's hidden test cases.

Started by the grader as ``python -m llmcourse.teaching.runner`` (never by hand). It reads
its plan as JSON on stdin: the notebook's code cells, and for each answer cell the answer's
name, the hidden cases (as data) and the exercise's self-study check. Then it

1. takes every reference it needs (the encoder, ``os.write``, ``json.dumps``, the nonce)
   before any student code runs, and closes stdin;
2. runs the cells in order in an IPython shell, as Jupyter would;
3. right after each answer cell, before any later cell runs, calls the answer on its
   hidden cases and sends back what came out as plain data (``codec``), with the facts the
   grader needs to judge honesty (is the answer a function written in that cell, which of
   the names it reads belong to the course package); the self-study check's message is
   sent too, as a hint for feedback only;
4. writes one line per event to the result pipe (file descriptor ``LLMCOURSE_RESULT_FD``),
   each prefixed with the nonce the grader sent, so student output elsewhere is not taken
   for a result.

It decides nothing: every verdict is made by the grader, outside the sandbox.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import types


class _ProbeTimeout(BaseException):
    """A hidden case ran over its time."""


def main() -> int:
    plan = json.loads(sys.stdin.buffer.read())
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    fd = int(os.environ.pop("LLMCOURSE_RESULT_FD"))

    import importlib

    import torch  # noqa: F401  (the encoder holds torch's own methods, taken now)

    from llmcourse.teaching.codec import TooLarge, decode, make_driver, make_encoder

    encode, drive = make_encoder(), make_driver()
    write, dumps, nonce = os.write, json.dumps, plan["nonce"]
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    function_type, module_type = types.FunctionType, types.ModuleType
    builtin_type, type_, id_, str_ = types.BuiltinFunctionType, type, id, str
    dict_get, dict_values = dict.get, dict.values
    set_timer, real_timer = signal.setitimer, signal.ITIMER_REAL
    case_s, check_s = float(plan["case_timeout"]), float(plan["check_timeout"])

    def send(message: dict) -> None:
        data = (nonce + " " + dumps(message) + "\n").encode()
        while data:
            data = data[write(fd, data) :]

    def on_alarm(signum, frame):
        raise _ProbeTimeout()

    signal.signal(signal.SIGALRM, on_alarm)

    def identity(value) -> tuple[str, str]:
        """(module, name) of a function, class or module, read without running its code."""
        kind = type_(value)
        if kind is module_type:
            return str_(value.__name__), ""
        if kind is function_type:
            module = str_(value.__module__ or "")
            if str_(value.__code__.co_filename).startswith(package_dir):
                module = module if module.startswith("llmcourse") else "llmcourse"
            return module, str_(value.__code__.co_name)
        if kind is builtin_type or kind is type_:
            return str_(getattr(value, "__module__", "") or ""), str_(value.__name__)
        return "", ""

    def origin(value) -> str:
        """The course package's module a value comes from, or ""."""
        module = identity(value)[0]
        if module.startswith("llmcourse") and not module.startswith("llmcourse.exercises"):
            return module
        return ""

    def probe(spec: dict, ns: dict, before: set) -> dict:
        name = spec["name"]
        missing = object()
        value = dict_get(ns, name, missing)
        if value is missing or value is None:
            return {
                "answered": False,
                "why": f"{name} is not defined" if value is missing else f"{name} is still None",
            }
        out: dict = {"answered": True}
        if type_(value) is not function_type:
            kind = type_(value)
            out["not_function"] = (
                f"{name} is a {getattr(kind, '__qualname__', '?')}, not a "
                "function written in the answer cell"
            )
            mod = origin(value)
            if mod:
                out["package"] = f"{name} is the course package's own ({mod})"
        else:
            mod = origin(value)
            if mod:
                out["package"] = f"{name} is the course package's own function ({mod})"
            elif id_(value.__code__) in before:
                out["alias"] = (
                    f"{name} is a function defined before the answer cell "
                    f"({value.__code__.co_name}), under another name"
                )
        used, calls = [], {}
        for free in spec["free"]:
            value_of_free = dict_get(ns, free, None)
            mod = origin(value_of_free)
            if mod:
                used.append(f"{free} ({mod})")
            calls[free] = identity(value_of_free)
        if used:
            out["package_use"] = "the answer uses the course package's " + ", ".join(used)
        out["free"] = calls
        if "not_function" in out or "package" in out or "alias" in out:
            return out
        results = []
        for case in spec["cases"]:
            args, kwargs = decode(case["args"], tensors=True), decode(case["kwargs"], tensors=True)
            try:
                set_timer(real_timer, case_s)
                try:
                    got = drive(spec.get("driver"), value, args, kwargs)
                finally:
                    set_timer(real_timer, 0)
                results.append({"value": encode(got)})
            except _ProbeTimeout:
                results.append({"timeout": case_s})
            except NotImplementedError as error:
                results.append({"not_answered": str_(error)[:300]})
            except TooLarge as error:
                results.append({"raised": f"the result is too large: {error}"})
            except BaseException as error:  # the answer itself failed on this case
                results.append({"raised": f"{type_(error).__name__}: {str_(error)[:300]}"})
        out["results"] = results
        out["hint"] = hint(spec, value)
        return out

    def hint(spec: dict, value) -> str:
        """The self-study check's message on this answer (feedback only, never a verdict)."""
        if not spec.get("check"):
            return ""
        try:
            set_timer(real_timer, check_s)
            try:
                check = getattr(importlib.import_module(spec["module"]), spec["check"])
                with contextlib.redirect_stdout(io.StringIO()):
                    check(value)
            finally:
                set_timer(real_timer, 0)
        except _ProbeTimeout:
            return "the self-study check ran out of time"
        except BaseException as error:
            if type_(error).__name__ in ("ExerciseError", "NotYetAnswered"):
                return str_(error)[:600]
        return ""

    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    ns = shell.user_ns
    probes = {int(k): v for k, v in plan["probes"].items()}
    send({"started": True})
    for index, source in plan["cells"]:
        before = set()
        keep = []  # hold the code objects, so that their ids stay theirs
        if index in probes:
            for v in list(dict_values(ns)):
                if type_(v) is function_type:
                    keep.append(v.__code__)
                    before.add(id_(v.__code__))
        result = shell.run_cell(source, store_history=True)
        error = result.error_before_exec or result.error_in_exec
        send({"cell": index, "error": type_(error).__name__ if error else None})
        for spec in probes.get(index, []):
            send({"probe": spec["label"], "outcome": probe(spec, ns, before)})
        del keep
    send({"done": True})
    sys.stdout.flush()
    os._exit(0)  # no atexit handler or thread left by the notebook runs after this


if __name__ == "__main__":
    sys.exit(main())
