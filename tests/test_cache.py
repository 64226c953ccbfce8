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


# --- damaged cache files -----------------------------------------------------------------------

N_KERNELS = 11
MAIN_MANY = "from compile import kernel\nfrom rules import value\n" + "".join(
    f"\n\n@kernel\ndef run{i}(x):\n    return x + value() + {i}\n" for i in range(N_KERNELS))
PROBE_MANY = ("import main\nfor i in range({n}):\n    run = getattr(main, f'run{{i}}')\n"
              "    print(i, run(0.0), sum(run.stats.cache_hits.values()))\n").format(n=N_KERNELS)


def _flip_byte(data, at):
    return data[:at] + bytes([data[at] ^ 0x10]) + data[at + 1:]


# kernel i's cache files get damage i; kernel 10 is left alone (the control)
DAMAGE = [("nbi", lambda d: b""), ("nbi", lambda d: d[:len(d) // 2]),
          ("nbi", lambda d: os.urandom(len(d))), ("nbi", lambda d: _flip_byte(d, len(d) // 2)),
          ("nbc", lambda d: b""), ("nbc", lambda d: d[:len(d) // 2]),
          ("nbc", lambda d: os.urandom(len(d))), ("nbc", lambda d: _flip_byte(d, len(d) // 2)),
          ("nbc", lambda d: _flip_byte(d, len(d) - 1)), ("nbi", None)]


def _probe(folder, cache):
    out = subprocess.run([sys.executable, "-c", PROBE_MANY], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, PYTHONPATH=str(folder),
                                               PYTHONDONTWRITEBYTECODE="1", NUMBA_CACHE_DIR=str(cache)))
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    assert [float(r[1]) for r in rows] == [1.0 + i for i in range(N_KERNELS)]
    return [int(r[2]) for r in rows]


def test_damaged_cache_files_are_compiled_again_and_replaced(tmp_path):
    """Every kind of damage to an index or data file is a cache miss, never an error (nor
    damaged machine code: the files carry a checksum); the fresh compile replaces the file.
    Kernel 9's index is a folder, so it can be neither read nor replaced: compiled in memory."""
    folder, cache = _package(tmp_path, MAIN_MANY), tmp_path / "cache"
    assert _probe(folder, cache) == [0] * N_KERNELS  # fills the cache
    assert _probe(folder, cache) == [1] * N_KERNELS
    for i, (suffix, damage) in enumerate(DAMAGE):
        (path,) = cache.rglob(f"main.run{i}-*.{'nbi' if suffix == 'nbi' else '*.nbc'}")
        if damage is None:
            path.unlink()
            path.mkdir()
        else:
            path.write_bytes(damage(path.read_bytes()))
    assert _probe(folder, cache) == [0] * len(DAMAGE) + [1]
    assert _probe(folder, cache) == [1] * (len(DAMAGE) - 1) + [0, 1]


def test_tapegrad_differentiates_with_a_damaged_cache_file(tmp_path):
    """The interpreter's own cache: a bit flipped in the data file of ``activity`` (the
    cheapest kernel to compile again) in a copy of this process's cache."""
    import numpy as np
    import tapegrad as tg
    import tapegrad.jit as J
    import tapegrad.numpy as tnp
    from numba.core import caching

    tg.grad(lambda x: tnp.sum(tnp.exp(x) * x))(np.ones(3))  # this process's cache is fresh
    source = J.activity._cache._cache_path
    cache = tmp_path / "cache"
    target = cache / caching._CacheLocator.get_suitable_cache_subpath(J.interpreter.__file__)
    target.mkdir(parents=True)
    for name in os.listdir(source) if J.CACHE_STATUS["activity"] == "disk" else []:
        if name.startswith("interpreter.") and name.endswith((".nbi", ".nbc")):
            shutil.copy(os.path.join(source, name), target / name)
    code = ("import numpy as np, tapegrad as tg, tapegrad.numpy as tnp, tapegrad.jit as J; "
            "g = tg.grad(lambda x: tnp.sum(tnp.exp(x) * x))(np.ones(3)); "
            "print(g[0], J.CACHE_STATUS['activity'], sum(J.activity.stats.cache_hits.values()))")
    before = _run(tmp_path, code, NUMBA_CACHE_DIR=str(cache)).split()
    assert before[1:] == ["disk", "1"] or not any(target.iterdir())
    for path in target.glob("interpreter.activity-*.nbc"):
        path.write_bytes(_flip_byte(path.read_bytes(), len(path.read_bytes()) // 2))
    g, status, hits = _run(tmp_path, code, NUMBA_CACHE_DIR=str(cache)).split()
    assert abs(float(g) - 2 * 2.718281828459045) < 1e-12 and status == "disk" and hits == "0"
    assert _run(tmp_path, code, NUMBA_CACHE_DIR=str(cache)).split()[1:] == ["disk", "1"]


# --- loading without numba's compiler registries ------------------------------------------

MAIN_ALLOCATES = textwrap.dedent("""
    from compile import kernel
    from rules import value

    @kernel(allocates=True)
    def run(x):
        text = "ab" * 2  # a new string: allocates (numba's runtime) and hashes (its hash secret)
        return x + value() if hash(text) == hash("abab") else -1.0
""")
PROBE_LOAD = ("import sys, main; print(main.run(0.0), sum(main.run.stats.cache_hits.values()), "
              "'numba.np.arraymath' in sys.modules)")
# Rewrites every data file with one more external symbol in its list, sealed again.
ADD_SYMBOL = textwrap.dedent("""
    import glob, pickle, compile
    for path in glob.glob({pattern!r}, recursive=True):
        with open(path, "rb") as f:
            symbols, *rest = pickle.loads(compile._opened(f.read()))
        with open(path, "wb") as f:
            f.write(compile._sealed(pickle.dumps((symbols + [{symbol!r}], *rest), protocol=-1)))
        print(path)
""")


def test_a_cached_kernel_loads_without_the_compiler_registries(tmp_path):
    """numba.np.arraymath stands for the registries numba's own cache imports before every
    load (scipy.linalg with it); the runtime and hash symbols of this kernel resolve without."""
    folder, cache = _package(tmp_path, MAIN_ALLOCATES), tmp_path / "cache"
    assert _run(folder, PROBE_LOAD, NUMBA_CACHE_DIR=str(cache)) == "1.0 0 True"  # compiled
    assert _run(folder, PROBE_LOAD, NUMBA_CACHE_DIR=str(cache)) == "1.0 1 False"


def test_a_cached_kernel_with_unknown_symbols_refreshes_numba_or_compiles(tmp_path):
    """A symbol only numba's registries define (its string-hash secret) makes the load refresh
    the context first, as numba does; a symbol nobody defines makes it a cache miss, never a
    call into unlinked code."""
    folder, cache = _package(tmp_path, MAIN_STAMPED), tmp_path / "cache"
    assert _run(folder, PROBE_LOAD, NUMBA_CACHE_DIR=str(cache)) == "1.0 0 True"
    assert _run(folder, PROBE_LOAD, NUMBA_CACHE_DIR=str(cache)) == "1.0 1 False"
    pattern = str(cache / "**" / "main.run-*.nbc")
    _run(folder, ADD_SYMBOL.format(pattern=pattern, symbol="_numba_hashsecret_siphash_k0"))
    assert _run(folder, PROBE_LOAD, NUMBA_CACHE_DIR=str(cache)) == "1.0 1 True"
    _run(folder, ADD_SYMBOL.format(pattern=pattern, symbol="tapegrad_no_such_symbol"))
    assert _run(folder, PROBE_LOAD, NUMBA_CACHE_DIR=str(cache)) == "1.0 0 True"
    assert _run(folder, PROBE_LOAD, NUMBA_CACHE_DIR=str(cache)) == "1.0 1 False"


def test_a_first_gradient_from_the_cache_does_not_start_numbas_runtime(tmp_path):
    """No kernel on the first gradient's path allocates (``activity`` writes into arrays
    its caller made), so a fresh process never starts numba's runtime (17 ms)."""
    import tapegrad as tg
    import tapegrad.jit as J
    import tapegrad.numpy as tnp

    tg.grad(lambda x: tnp.sin(x) * x)(0.7)  # this process fills the cache the child reads
    if J.CACHE_STATUS.get("activity") != "disk":
        pytest.skip("kernels are compiled in memory here: the child would compile them")
    code = ("import tapegrad as tg, tapegrad.numpy as tnp; "
            "print(tg.grad(lambda x: tnp.sin(x) * x)(0.7)); "
            "from numba.core.runtime import nrt; print(getattr(nrt.rtsys, '_init', 'unknown'))")
    started = _run(tmp_path, code)
    if started == "unknown":
        pytest.skip("this numba keeps its runtime state elsewhere")
    assert started == "False"


# --- loading without parsing the kernel's LLVM module ---------------------------------------

PROBE_LINK = textwrap.dedent("""
    import numba, main, compile
    first = main.run(0.0)
    (cres,) = main.run.overloads.values()
    parsed = cres.library._shared_module is not None

    @numba.njit
    def caller(x):  # compiled here, after main.run was loaded: links main.run's LLVM module
        return main.run(x) + 10.0

    print(first, sum(main.run.stats.cache_hits.values()), type(cres.library).__name__, parsed, caller(1.0))
""")


@pytest.mark.skipif(not compile_module._LAZY_LOADS, reason="this numba's loads take numba's own path")
def test_a_cached_kernel_loads_without_its_llvm_module_and_links_later(tmp_path):
    """A load registers the kernel's symbols from its data file and leaves its LLVM module
    unparsed; a kernel compiled later that calls it still links it in (parsed then)."""
    folder, cache = _package(tmp_path, MAIN_STAMPED), tmp_path / "cache"
    assert _run(folder, PROBE_LINK, NUMBA_CACHE_DIR=str(cache)).split()[:2] == ["1.0", "0"]
    assert _run(folder, PROBE_LINK, NUMBA_CACHE_DIR=str(cache)).split() == [
        "1.0", "1", "_LazyLinkLibrary", "False", "12.0"]


# --- numba's third-party extensions --------------------------------------------------------

PROBE_EXTENSION = ("import builtins, main; print(main.run(0.0), sum(main.run.stats.cache_hits.values()), "
                   "getattr(builtins, 'FAKE_EXTENSION_LOADED', False))")


def test_a_compile_loads_numbas_extensions_and_a_cached_load_does_not(tmp_path):
    """numba runs the ``numba_extensions`` entry points before it types a call; a kernel's
    first call skips that, and a compile (a cache miss) still runs them before compiling."""
    folder, cache = _package(tmp_path, MAIN_STAMPED), tmp_path / "cache"
    (folder / "fake_extension.py").write_text(
        "import builtins\n\ndef init():\n    builtins.FAKE_EXTENSION_LOADED = True\n")
    info = folder / "fake_extension-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-extension\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[numba_extensions]\ninit = fake_extension:init\n")
    assert _run(folder, PROBE_EXTENSION, NUMBA_CACHE_DIR=str(cache)) == "1.0 0 True"
    assert _run(folder, PROBE_EXTENSION, NUMBA_CACHE_DIR=str(cache)) == "1.0 1 False"
