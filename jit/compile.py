"""How every tapegrad kernel is compiled and cached.

``kernel(fn)`` is the only way a function in this package becomes machine code.  It is
``numba.njit`` with the options we have settled on (``error_model="numpy"`` so that 1/0 is
inf and not an exception, no ``fastmath`` so NaN and inf keep their IEEE meaning, ``nogil``
so replays on several Python threads run in parallel) plus an on-disk cache that is safe.

Invariants
----------
* numba's own ``cache=True`` keys a compiled function on its *own* source file only.  The
  interpreter calls rules and kernels defined in other modules of this package and bakes
  the opcode numbers in as constants, so an edit to any of them would be served stale.
  We therefore stamp every cache entry with a digest of *all* ``.py`` files in this
  package: any edit anywhere here invalidates every kernel's cache.
* When no cache folder is writable (read-only install, odd ``NUMBA_CACHE_DIR``), kernels
  are compiled in memory instead.  Import never fails because of caching;
  ``CACHE_STATUS`` says which of the two happened.
* A cache file is used only if it is intact: each index (``.nbi``) and data (``.nbc``) file
  carries a sha256 of its contents, checked before anything in it is unpickled, so a
  truncated or bit-flipped file cannot feed numba damaged machine code.  A damaged,
  unreadable or unwritable cache file of any kind is a cache miss: the kernel is compiled,
  and the fresh result replaces the damaged file when the folder is writable.
* Loading a cached kernel does not prepare numba to compile.  numba's own cache refreshes
  the whole target context before every load, importing every typing and lowering registry
  it has (scipy.linalg among them): about 0.2 s, most of a fresh process's first gradient.
  (numba's compiler refreshes the context itself before it compiles anything.)  A load
  needs only the symbols its machine code links against, and an unresolved one would not
  fail the load but make the first call jump to address 0.  So each data file lists its
  code's external symbols (saved with the code, sealed with it); a load whose symbols are
  not all defined in this process first starts numba's runtime (NRT), then refreshes the
  context as numba would, and is a cache miss if any symbol is still unknown.
* Loading a cached kernel does not parse its LLVM bitcode.  numba keeps, beside the machine
  code, the kernel's whole LLVM module, parsed on every load (about 45 ms for the two
  sweeps) only so that a kernel compiled *later* can link it in, and walks that module
  twice to learn which symbols it defines.  The data file also lists those symbols, so
  a load registers them from the list and parses the bitcode only when a compile asks to
  link the kernel (``_LazyLinkLibrary``).  With a numba whose internals differ from the
  ones this was written against, loads take numba's own path.
"""
import functools
import hashlib
import inspect
import io
import os
import pickle
import threading

import llvmlite.binding as ll
import numba
from numba.core import caching, codegen, compiler
from numba.core.runtime import rtsys

JIT_OPTIONS = dict(nogil=True, error_model="numpy", boundscheck=False)
# The interpreter and everything it calls never allocate, so they run without numba's
# reference counting: otherwise every call that LLVM does not inline pays an atomic
# incref/decref pair per array argument, ~25 ns, more than a scalar entry's whole work.
NO_ALLOC = dict(JIT_OPTIONS, _nrt=False)
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
CACHE_STATUS = {}  # function qualname -> "disk" or "memory"


@functools.lru_cache(maxsize=None)
def package_digest(package_dir=PACKAGE_DIR):
    """sha256 over the names and contents of every .py file in ``package_dir``."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(package_dir)):
        if name.endswith(".py"):
            digest.update(name.encode())
            with open(os.path.join(package_dir, name), "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def _stamped(locator_class):
    """A numba cache locator whose freshness stamp covers the whole package."""

    class PackageStampedLocator(locator_class):
        def get_source_stamp(self):
            return package_digest(os.path.dirname(os.path.abspath(self._py_file)))

    PackageStampedLocator.__name__ = "PackageStamped" + locator_class.__name__
    return PackageStampedLocator


def _external_symbols(library):
    """The functions and globals a compiled library's machine code takes from outside it
    (CPython, the C library, numba's helpers and runtime), as its LLVM module declares them."""
    module = library._final_module
    return sorted({g.name for group in (module.functions, module.global_variables) for g in group
                   if g.is_declaration and not g.name.startswith("llvm.")})


def _unresolved(symbols, target_context):
    engine = target_context.codegen()._engine
    return [s for s in symbols if not (ll.address_of_symbol(s) or engine.is_symbol_defined(s))]


def _defined_symbols(module):
    """The symbols an LLVM module defines, as numba's ``JitEngine`` records them."""
    return sorted({g.name for group in (module.functions, module.global_variables) for g in group
                   if not g.is_declaration})


class _LazyLinkLibrary(codegen.JITCodeLibrary):
    """A library loaded from its machine code whose LLVM module for linking (``bitcode``)
    is parsed only when a compile links it into another library."""
    _bitcode = None

    def _get_module_for_linking(self):
        if self._shared_module is None and self._bitcode is not None:
            self._shared_module, self._bitcode = ll.parse_bitcode(self._bitcode), None
        return super()._get_module_for_linking()


# numba's CompileResult._rebuild, which _rebuild below repeats but for the library's loading
_REBUILD_ARGS = ("cls", "target_context", "libdata", "fndesc", "env", "signature", "objectmode",
                 "lifted", "typeann", "reload_init", "referenced_envs")
_LAZY_LOADS = (tuple(inspect.signature(compiler.CompileResult._rebuild.__func__).parameters) == _REBUILD_ARGS
               and all(hasattr(codegen.JITCodeLibrary, a) for a in (
                   "enable_object_caching", "_set_compiled_object", "_finalize_final_module")))


def _rebuild(target_context, defined, libdata, fndesc, env, signature, objectmode, lifted, typeann,
             reload_init, referenced_envs):
    """``CompileResult._rebuild`` with the library loaded by ``_LazyLinkLibrary``: the
    same steps in the same order, the defined symbols taken from ``defined``."""
    for fn in reload_init or ():
        fn()
    name, kind, (object_code, bitcode) = libdata
    library = _LazyLinkLibrary(target_context.codegen(), name)
    library.enable_object_caching()
    library._set_compiled_object(object_code)
    library._bitcode = bitcode
    library._finalize_final_module()
    library.codegen._engine._defined_symbols.update(defined)
    cfunc = target_context.get_executable(library, fndesc, env)
    cres = compiler.CompileResult(
        target_context=target_context, typing_context=target_context.typing_context, library=library,
        environment=env, entry_point=cfunc, fndesc=fndesc, type_annotation=typeann,
        signature=signature, objectmode=objectmode, lifted=lifted, typing_error=None,
        call_helper=None, metadata=None, reload_init=reload_init, referenced_envs=referenced_envs)
    for referenced in referenced_envs:
        library.codegen.set_env(referenced.env_name, referenced)
    return cres


class _PackageCacheImpl(caching.CompileResultCacheImpl):
    """numba's compile-result payload, preceded by the lists of its external symbols and of
    the symbols its linking module defines."""
    _locator_classes = [_stamped(c) for c in (caching.UserProvidedCacheLocator,
                                              caching.InTreeCacheLocator,
                                              caching.UserWideCacheLocator)]

    def reduce(self, cres):
        reduced = super().reduce(cres)
        return (_external_symbols(cres.library), _defined_symbols(cres.library._get_module_for_linking()),
                reduced)

    def rebuild(self, target_context, payload):
        symbols, defined, reduced = payload
        if _unresolved(symbols, target_context):
            rtsys.initialize(target_context)  # the NRT_* of kernels that allocate
        if _unresolved(symbols, target_context):
            target_context.refresh()  # all that numba registers before it compiles
        missing = _unresolved(symbols, target_context)
        if missing:
            raise LookupError(f"cached kernel needs unknown symbols {missing[:3]}")
        lazy = (_LAZY_LOADS and reduced[0][1] == "object"
                and getattr(target_context.codegen(), "_library_class", None) is codegen.JITCodeLibrary)
        return _rebuild(target_context, defined, *reduced) if lazy else super().rebuild(target_context, reduced)


_DIGEST = hashlib.sha256().digest_size


def _sealed(payload):
    return hashlib.sha256(payload).digest() + payload


def _opened(blob):
    """The payload of a sealed blob; ValueError if the blob is damaged."""
    payload = blob[_DIGEST:]
    if len(blob) < _DIGEST or hashlib.sha256(payload).digest() != blob[:_DIGEST]:
        raise ValueError("damaged numba cache file")
    return payload


class _CheckedCacheFile(caching.IndexDataCacheFile):
    """numba's index and data files, each sealed whole with a sha256 of its contents, which
    is checked before anything in the file is unpickled.  A damaged index reads as an
    empty one, so the next save writes a fresh index instead of failing on the old one.
    """

    def _dump(self, obj):
        return _sealed(super()._dump(obj))

    def _save_index(self, overloads):
        payload = pickle.dumps(self._version, protocol=-1)
        payload += super()._dump((self._source_stamp, overloads))
        with self._open_for_write(self._index_path) as f:
            f.write(_sealed(payload))

    def _load_index(self):
        try:
            with open(self._index_path, "rb") as f:
                payload = io.BytesIO(_opened(f.read()))
            if pickle.load(payload) != self._version:
                return {}
            stamp, overloads = pickle.loads(payload.read())
        except Exception:  # missing, truncated, bit-flipped or foreign: nothing cached
            return {}
        return overloads if stamp == self._source_stamp and isinstance(overloads, dict) else {}

    def _load_data(self, name):
        with open(self._data_path(name), "rb") as f:
            return pickle.loads(_opened(f.read()))


class _PackageFunctionCache(caching.FunctionCache):
    """numba's function cache on sealed files, where any failure to load or save an
    overload is a cache miss (the kernel is compiled in memory), never an error, and a load
    refreshes numba's context only if the code needs a symbol that is not yet defined."""
    _impl_class = _PackageCacheImpl

    def __init__(self, py_func):
        super().__init__(py_func)
        self._cache_file = _CheckedCacheFile(self._cache_path, self._impl.filename_base,
                                             self._impl.locator.get_source_stamp())

    def load_overload(self, sig, target_context):
        try:
            return self._load_overload(sig, target_context)  # numba's, minus the context refresh
        except Exception:
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except Exception:
            pass


def _no_extensions_before_typing():
    """A kernel's first call skips loading numba's third-party extensions (entry points,
    ~5 ms), which numba does before typing the arguments in case an extension types them:
    a kernel takes arrays and numbers only, and a compile loads the extensions itself
    (``CPUContext.refresh``), so only a load from the cache goes without them."""


def kernel(fn=None, allocates=False):
    """Compile ``fn`` with numba, cached on disk under the package-wide stamp if possible.

    Kernels do not allocate unless they say so with ``allocates=True``.
    """
    if fn is None:
        return functools.partial(kernel, allocates=allocates)
    dispatcher = numba.njit(**(JIT_OPTIONS if allocates else NO_ALLOC))(fn)
    dispatcher._compilation_chain_init_hook = _no_extensions_before_typing
    try:
        # Dispatcher.enable_caching() does exactly this with numba's own FunctionCache.
        dispatcher._cache = _PackageFunctionCache(fn)
        CACHE_STATUS[fn.__qualname__] = "disk"
    except RuntimeError:  # no writable cache location: stay in memory
        CACHE_STATUS[fn.__qualname__] = "memory"
    return dispatcher


class LazyRule:
    """A rule whose numba dispatcher is made when first needed: when a kernel being compiled
    types a call to it (numba reads ``_numba_type_``), or when Python calls it or reads any
    other dispatcher attribute.  A process that loads its kernels from the cache makes none
    of them (~200 dispatchers at ~0.06 ms each).  Name, docstring and module are the
    function's."""

    def __init__(self, fn, options):
        functools.update_wrapper(self, fn)
        self._fn, self._options, self._dispatcher = fn, options, None

    @property
    def dispatcher(self):
        if self._dispatcher is None:
            with _LAZY_LOCK:  # one dispatcher per rule, whichever thread asks first
                if self._dispatcher is None:
                    self._dispatcher = numba.njit(**self._options)(self._fn)
        return self._dispatcher

    def __getattr__(self, name):  # _numba_type_, py_func, overloads, ...: the dispatcher's
        if name.startswith("__") or name in ("_fn", "_options", "_dispatcher"):
            raise AttributeError(name)
        return getattr(self.dispatcher, name)

    def __call__(self, *args, **kwargs):
        return self.dispatcher(*args, **kwargs)

    def __repr__(self):
        return f"<rule {self.__qualname__}>"


_LAZY_LOCK = threading.Lock()


def rule(fn=None, inline=False):
    """Compile a derivative rule or kernel helper; called only from kernels, never allocates.

    ``inline=True`` has LLVM inline it wherever it is called (numba's ``forceinline``): a
    rule too big for LLVM's inliner stays a call, and an elementwise loop with a call in it
    does not vectorise.  A function compiled already is returned as it is, so a row can
    take a rule compiled with ``inline=True``.  The dispatcher is made on first use
    (``LazyRule``).
    """
    if fn is None:
        return functools.partial(rule, inline=inline)
    if isinstance(fn, (LazyRule, numba.core.dispatcher.Dispatcher)):
        return fn
    return LazyRule(fn, dict(NO_ALLOC, forceinline=True) if inline else NO_ALLOC)
