"""Maintenance helper for exclusions.py: list the tests that ran on tideloop
(according to compat/results/py3.X.json) whose source touches private
internals of stock asyncio.  It only *suggests*: read each test before
adding it to exclusions.py, and never add one for its behaviour.

    /root/.pyenv/versions/3.12.1/bin/python -m compat.scan_internals [--all]

Run it with the Python whose results you want to scan (it imports that
Python's test.test_asyncio); tideloop is taken from the path recorded in
the results file.  --all also lists tests already excluded.
"""

import fnmatch
import importlib
import inspect
import json
import os
import re
import sys

from . import run_cpython_suite as R
from .exclusions import EXCLUSIONS

PRIVATE = re.compile(
    r"\bloop\._\w+"                                # loop._anything
    r"|mock\.patch\(\s*['\"]asyncio\.[\w.]+"       # patching stock modules
    r"|mock\.patch\.object\(\s*\w+(?:\.\w+)*,\s*['\"]_\w+['\"]"
    r"|patch_socket"                               # asyncio.base_events.socket
    r"|\b(?:base_events|selector_events|unix_events|proactor_events)"
    r"\.\w+"
    r"|_selector\b|_run_once\b|_ready\b|_scheduled\b|_make_self_pipe"
    r"|_process_events")


def _source_with_helpers(cls, name, depth=2, seen=None):
    """Source of cls.name plus that of the self.helper() methods it calls
    that are defined in test_asyncio (not in unittest)."""
    seen = set() if seen is None else seen
    if name in seen:
        return ""
    seen.add(name)
    func = getattr(cls, name, None)
    try:
        src = inspect.getsource(func)
        filename = inspect.getsourcefile(inspect.unwrap(func)) or ""
    except (OSError, TypeError):
        return ""
    if "test_asyncio" not in filename:
        return ""
    if depth:
        for helper in set(re.findall(r"self\.(\w+)\(", src)):
            src += "\n" + _source_with_helpers(cls, helper, depth - 1, seen)
    return src


def main():
    show_all = "--all" in sys.argv
    minor = "%d.%d" % sys.version_info[:2]
    path = os.path.join(R.RESULTS, f"py{minor}.json")
    with open(path) as f:
        data = json.load(f)
    sys.path.insert(0, data["tideloop_path"])
    import tideloop
    ran = {t["id"] for t in data["tests"]
           if t["bucket"] in R.ON_TIDELOOP or
           (show_all and t["bucket"] == R.EXCLUDED)}
    mods = {}
    for tid in sorted(ran):
        short = R._short(tid)
        excluded = any(fnmatch.fnmatchcase(short, p) for p in EXCLUSIONS)
        if excluded and not show_all:
            continue
        modname, clsname, meth = short.split(".")
        if modname not in mods:
            mod = importlib.import_module(R.PKG + modname)
            R._make_factory_variants(mod, tideloop)
            mods[modname] = mod
        cls = getattr(mods[modname], clsname)
        src = _source_with_helpers(cls, meth)
        hits = sorted(set(PRIVATE.findall(src)))
        if hits:
            mark = " [excluded]" if excluded else ""
            print(f"{short}{mark}: {', '.join(hits)}")


if __name__ == "__main__":
    main()
