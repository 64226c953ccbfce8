"""The on-disk kernel cache: never stale, never fatal.

Each test runs a fresh interpreter in a subprocess, since what matters is what a new
process loads from the cache.  The staleness tests build a two-module package in a
temporary folder: ``main.py`` holds a cached kernel that calls a rule in ``rules.py``, the
situation of the interpreter and the op table.
"""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import tapegrad.jit.compile as compile_module

pytestmark = pytest.mark.filterwarnings("ignore")

RULES = "from compile import rule\n\nVALUE = {v}\n\n@rule\ndef value():\n    return VALUE * 1.0\n"
MAIN_STAMPED = textwrap.dedent("""
    from compile import kernel
    from rules import value

    @kernel
    def run(x):
        return x + value()
""")
MAIN_PLAIN = textwrap.dedent("""
    import numba
    from rules import value

    @numba.njit(cache=True)
    def run(x):
        return x + value()
""")


def _run(folder, code, **env):
    environment = dict(os.environ, PYTHONPATH=str(folder), PYTHONDONTWRITEBYTECODE="1", **env)
    out = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def _package(tmp_path, main):
    folder = tmp_path / "pkg"
    folder.mkdir()
    shutil.copy(compile_module.__file__, folder / "compile.py")
    (folder / "rules.py").write_text(RULES.format(v=1))
    (folder / "main.py").write_text(main)
    return folder


PROBE = "import main, compile; print(main.run(0.0), compile.CACHE_STATUS.get('run', 'plain'))"


def test_editing_another_module_invalidates_the_cache(tmp_path):
    folder = _package(tmp_path, MAIN_STAMPED)
    cache = tmp_path / "cache"
    assert _run(folder, PROBE, NUMBA_CACHE_DIR=str(cache)) == "1.0 disk"
    assert any(cache.rglob("*.nbi")), "the first run should have written a cache index"
    (folder / "rules.py").write_text(RULES.format(v=2))
    assert _run(folder, PROBE, NUMBA_CACHE_DIR=str(cache)) == "2.0 disk"


def test_plain_numba_cache_is_stale_in_the_same_situation(tmp_path):
    """The control: numba's own cache=True serves the old rule, which the test above rules out."""
    folder = _package(tmp_path, MAIN_PLAIN)
    cache = tmp_path / "cache"
    assert _run(folder, PROBE, NUMBA_CACHE_DIR=str(cache)) == "1.0 plain"
    (folder / "rules.py").write_text(RULES.format(v=2))
    assert _run(folder, PROBE, NUMBA_CACHE_DIR=str(cache)) == "1.0 plain"


def test_no_writable_cache_location_falls_back_to_memory(tmp_path):
    folder = _package(tmp_path, MAIN_STAMPED)
    (folder / "__pycache__").write_text("a file where the in-tree cache folder would go")
    blocked = str(tmp_path / "not-a-folder" / "x")
    (tmp_path / "not-a-folder").write_text("")
    line = _run(folder, PROBE, NUMBA_CACHE_DIR=blocked, HOME=blocked, XDG_CACHE_HOME=blocked)
    assert line == "1.0 memory"


def test_tapegrad_imports_and_differentiates_with_an_unusable_cache_dir(tmp_path):
    (tmp_path / "file").write_text("")
    code = ("import tapegrad as tg, tapegrad.numpy as tnp; "
            "print(tg.grad(lambda x: tnp.sum(tnp.exp(x) * x))(__import__('numpy').ones(3))[0])")
    line = _run(tmp_path, code, NUMBA_CACHE_DIR=str(tmp_path / "file" / "cache"))
    assert abs(float(line) - 2 * 2.718281828459045) < 1e-12
