"""python -m tideloop: run a Python program on tideloop, as `python` runs it.

    python -m tideloop script.py [args]    (or a directory / zip file
                                            with a __main__.py)
    python -m tideloop -m module [args]
    python -m tideloop -c code [args]
    python -m tideloop - [args]            (the program from stdin)

First tideloop becomes asyncio's loop (tideloop._policy.install_for_main:
asyncio.run(), asyncio.Runner(), new_event_loop() and, up to Python 3.15,
get_event_loop() give tideloop loops; no deprecated API, no warning).  Then
the program runs as __main__ the way `python` would run it: the same
sys.argv, sys.path[0] and __main__ globals (__file__ absolute), the same
error messages and exit statuses (a script that cannot be opened: one line,
status 2; a module that cannot be found: one line, status 1), and
tracebacks without the frames of this launcher.  Interpreter options go
before -m tideloop: python -X dev -W error -m tideloop script.py.
"""

from __future__ import annotations

import builtins
import importlib.machinery
import importlib.util
import io
import linecache
import marshal
import os
import pkgutil
import runpy
import sys
import types
from typing import Any, Callable

USAGE = ("usage: python -m tideloop script.py [args ...]\n"
         "       python -m tideloop -m module [args ...]\n"
         "       python -m tideloop -c code [args ...]\n"
         "       python -m tideloop - [args ...]   (program read from stdin)\n"
         "Runs the program as `python` would, with asyncio on tideloop.\n")


def main() -> int:
    argv = sys.argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        sys.stderr.write(USAGE)
        return 0 if argv else 2
    first, rest = argv[0], argv[1:]
    if first[:2] in ("-m", "-c"):
        # -m mod / -mmod, -c code / -ccode, as python takes them.
        value = first[2:]
        if not value:
            if not rest:
                sys.stderr.write("Argument expected for the %s option\n%s"
                                 % (first, USAGE))
                return 2
            value, rest = rest[0], rest[1:]
        _install()
        if first[:2] == "-m":
            return _run_module(value, rest)
        return _run_source(value, "<string>", ["-c", *rest])
    if first.startswith("-") and first != "-":
        sys.stderr.write("python -m tideloop: unknown option %s\n%s"
                         % (first, USAGE))
        return 2
    _install()
    if first == "-":
        return _run_source(sys.stdin.read(), "<stdin>", argv)
    return _run_path(first, rest)


def _install() -> None:
    from tideloop._policy import install_for_main
    install_for_main()


# -- the program's environment, as python sets it up -------------------

def _set_path0(value: str) -> None:
    # python -P / PYTHONSAFEPATH (3.11+) and -I add no path entry; neither
    # did the python that runs this launcher, so there is nothing to
    # replace.
    if sys.flags.isolated or getattr(sys.flags, "safe_path", False):
        return
    sys.path[0] = value          # the entry `-m tideloop` put there


def _fresh_main(**attrs: object) -> dict[str, Any]:
    """A new __main__ module with the globals python gives it, installed in
    sys.modules; returns its namespace."""
    module = types.ModuleType("__main__")
    ns = module.__dict__
    ns["__builtins__"] = builtins
    ns["__loader__"] = importlib.machinery.BuiltinImporter
    if sys.version_info < (3, 14):
        ns["__annotations__"] = {}   # python's __main__ has it before 3.14
    ns.update(attrs)
    sys.modules["__main__"] = module
    return ns


# python's own -m machinery (private, present in every runpy since 2.x):
# the same messages, argv[0] and traceback frames as `python -m`.
_run_module_as_main: Callable[..., object] = getattr(
    runpy, "_run_module_as_main")


def _program_name() -> str:
    orig = getattr(sys, "orig_argv", None)     # 3.10+
    return orig[0] if orig else sys.executable


def _run_module(name: str, args: list[str]) -> int:
    # Exactly python's own -m: runpy sets argv[0] to the module's file and
    # reports a missing module in one line (status 1).
    sys.argv = ["-m", *args]
    _set_path0(os.getcwd())
    _fresh_main()
    _launch(_run_module_as_main, name)
    return 0


def _run_source(source: str, filename: str, argv: list[str]) -> int:
    sys.argv = argv
    _set_path0("")
    ns = _fresh_main()
    _launch(_exec, source, filename, ns)
    return 0


def _run_path(path: str, args: list[str]) -> int:
    sys.argv = [path, *args]
    # python makes the path absolute by joining it to the current
    # directory, without normalizing it ("/cwd/./x.py").
    full = os.path.join(os.getcwd(), path)
    importer = pkgutil.get_importer(full) if os.path.exists(full) else None
    if importer is not None:
        # A directory or zip file: its __main__ module, as python runs it.
        _set_path0(full)
        _fresh_main()
        _launch(_run_module_as_main, "__main__", False)
        return 0
    try:
        with io.open_code(full) as f:
            data = f.read()
    except OSError as exc:
        sys.stderr.write("%s: can't open file %r: [Errno %s] %s\n"
                         % (_program_name(), full, exc.errno, exc.strerror))
        return 2
    _set_path0(os.path.dirname(os.path.realpath(full)))
    ns = _fresh_main(__file__=full)
    if sys.version_info < (3, 15):
        ns["__cached__"] = None       # 3.15 no longer sets it
    if data[:4] == importlib.util.MAGIC_NUMBER:
        ns["__loader__"] = importlib.machinery.SourcelessFileLoader(
            "__main__", full)
        _launch(_exec, marshal.loads(data[16:]), full, ns)
    else:
        ns["__loader__"] = importlib.machinery.SourceFileLoader(
            "__main__", full)
        _launch(_exec, data, full, ns)
    return 0


def _exec(source: str | bytes | types.CodeType, filename: str,
          ns: dict[str, Any]) -> None:
    if isinstance(source, types.CodeType):
        code = source
    else:
        code = compile(source, filename, "exec", dont_inherit=True)
        register = getattr(linecache, "_register_code", None)
        if filename == "<string>" and register is not None:
            # Since 3.13 python -c keeps its text for tracebacks: 3.13 under
            # the file name, 3.14+ per code object (_interactive_cache).
            per_code = hasattr(linecache, "_interactive_cache")
            register(code if per_code else filename, source, filename)
    exec(code, ns)


# -- tracebacks without this launcher's frames -------------------------

def _launch(func: Callable[..., object], *args: object) -> None:
    """Call func(*args): the program.  An exception that escapes it reaches
    sys.excepthook with a traceback that starts below this frame, as if
    python had run the program itself."""
    try:
        func(*args)
    except BaseException:
        # Only now, so that the program saw python's own hook.
        if not isinstance(sys.excepthook, _HideLauncherFrames):
            sys.excepthook = _HideLauncherFrames(sys.excepthook)
        raise


class _HideLauncherFrames:
    def __init__(self, hook: Callable[..., object]) -> None:
        self.hook = hook

    def __call__(self, exc_type: type[BaseException], exc: BaseException,
                 tb: types.TracebackType | None) -> None:
        entry = tb
        while entry is not None:
            if entry.tb_frame.f_code is _launch.__code__:
                # What follows: the program's frames (python's own runpy
                # frames for -m and directories), after _exec's.
                tb = entry.tb_next
                while tb is not None and tb.tb_frame.f_code is _exec.__code__:
                    tb = tb.tb_next
                if exc is not None:
                    exc.__traceback__ = tb
                break
            entry = entry.tb_next
        self.hook(exc_type, exc, tb)


if __name__ == "__main__":
    sys.exit(main())
