"""Random programs over the supported ops, for ``test_random_programs``.

A program is ``(steps, terms)``.  Each step appends one node to a list that starts with
the inputs: ``("unary", "exp", i)``, ``("binary", "multiply", i, j)``, ``("index", i, key)``
and so on (``OPERANDS`` says which fields are nodes).  The output is the sum over
``terms`` of ``sum(node * weights)``.  :func:`run` evaluates a program with
``tapegrad.numpy`` (on traced values, or on plain numpy arrays, which it passes to numpy)
or with autograd; :class:`Builder` draws one with hypothesis, evaluating each step as it
goes to keep every value finite, moderate and away from kinks.  Programs hold only
tuples, strings and numbers, so ``tapegrad.grad`` can guard them by value.
"""
import numpy as np
from hypothesis import strategies as st

import tapegrad.numpy as tnp

try:
    import autograd.numpy as anp
except ImportError:  # test_random_programs then checks against finite differences only
    anp = None

MAX_SIZE = 36  # elements per node
# sinc is left out: x - x[0] makes exact zeros, where autograd's sinc rule divides by x**2
# (NaN) while tapegrad's is right (docs/conventions.md, sinc-0); test_ops covers it
UNARY = ("exp", "log", "sqrt", "sin", "cos", "tanh", "log1p", "sigmoid", "expm1", "exp2", "log2",
         "log10", "sinh", "cosh", "arcsinh", "arctan", "square", "reciprocal", "deg2rad")
BINARY = ("add", "subtract", "multiply", "divide", "maximum", "minimum", "fmax", "hypot",
          "arctan2", "logaddexp", "logaddexp2")
POSITIVE_ONLY = ("log", "sqrt", "log2", "log10", "reciprocal")  # drawn as x*x + 0.5
GROWING = ("exp", "expm1", "exp2", "sinh", "cosh")  # replaced by tanh beyond |x| = 3
SELECTING = ("maximum", "minimum", "fmax")  # kept away from ties
REDUCE = ("sum", "mean", "max", "logsumexp", "min", "var")



def broadcastable(a, b):
    """Whether two values broadcast together to a small enough result (MAX_SIZE, <= 4-d)."""
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        return False
    return int(np.prod(shape)) <= MAX_SIZE and len(shape) <= 4

# running a program: ``lib`` is tnp (traced or plain numpy values alike) or "ag" ----------

def _ag(name, *args):
    x = args[0]
    if name == "sigmoid":
        return 0.5 * (anp.tanh(0.5 * x) + 1.0)
    if name == "logsumexp":  # autograd's own fails on 0-d arrays
        shift = np.max(getattr(x, "_value", x), axis=args[1], keepdims=True)  # a constant
        out = anp.log(anp.sum(anp.exp(x - shift), axis=args[1], keepdims=True)) + shift
        return out if args[2] else anp.squeeze(out, axis=args[1])
    if name == "softmax":
        return anp.exp(x - _ag("logsumexp", x, args[1], True))
    if name == "broadcast_to":  # autograd's own cannot add leading axes
        return x + anp.zeros(args[1])
    if name in REDUCE:
        return getattr(anp, name)(x, axis=args[1], keepdims=args[2])
    return getattr(anp, name)(*args)


# An index key is stored with slices, integer arrays and ``...`` spelled as tuples.
def _frozen(x):
    if isinstance(x, slice):
        return ("slice", x.start, x.stop, x.step)
    if x is Ellipsis:
        return ("...",)
    if isinstance(x, (list, tuple)):
        return (("array",) if isinstance(x, list) else ()) + tuple(_frozen(k) for k in x)
    return x


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, list) else x


def _key(key):
    def thaw(k):
        if isinstance(k, tuple) and k[0] == "slice":
            return slice(*k[1:])
        if isinstance(k, tuple) and k[0] == "array":
            return np.array(k[1:], np.int64)
        return Ellipsis if k == ("...",) else k
    return tuple(thaw(k) for k in key)


# where each kind of step names its operand nodes (other ints are axes or indices)
OPERANDS = {"unary": (2,), "affine": (1,), "powc": (1,), "binary": (2, 3), "const": (2,),
            "reduce": (2,), "softmax": (1,), "matmul": (1, 2), "reshape": (1,), "T": (1,),
            "transpose": (1,), "broadcast_to": (1,), "index": (1,), "where": (2, 3),
            "scan": (2,), "join": (1, 2), "flip": (1,)}


def apply(step, nodes, lib):
    kind = step[0]
    args = [nodes[a] if k in OPERANDS[kind] else a for k, a in enumerate(step) if k > 0]
    ag = lib == "ag"
    if kind == "unary":
        return _ag(args[0], args[1]) if ag else getattr(tnp, args[0])(args[1])
    if kind == "affine":
        return args[0] * args[1] + args[2]
    if kind == "powc":
        return args[0] ** args[1]
    if kind in ("binary", "const"):
        name, x, y = args
        y = np.asarray(y) if kind == "const" else y
        return _ag(name, x, y) if ag else getattr(tnp, name)(x, y)
    if kind == "reduce":
        name, x, axis, keepdims = args
        return _ag(name, x, axis, keepdims) if ag else getattr(tnp, name)(x, axis=axis, keepdims=keepdims)
    if kind == "softmax":
        return _ag("softmax", args[0], args[1]) if ag else tnp.softmax(args[0], args[1])
    if kind == "matmul":
        return args[0] @ args[1]
    if kind == "reshape":
        return args[0].reshape(args[1])
    if kind == "T":
        return args[0].T
    if kind == "transpose":
        return anp.transpose(args[0], args[1]) if ag else tnp.transpose(args[0], args[1])
    if kind == "broadcast_to":
        return _ag("broadcast_to", args[0], args[1]) if ag else tnp.broadcast_to(args[0], args[1])
    if kind == "index":
        return args[0][_key(args[1])]
    if kind == "scan":  # cumsum along an axis
        return getattr(anp if ag else tnp, args[0])(args[1], axis=args[2])
    if kind == "join":  # concatenate or stack two nodes
        name, axis = args[2], args[3]
        return getattr(anp if ag else tnp, name)([args[0], args[1]], axis=axis)
    if kind == "flip":  # autograd has no flip gradient: a reversing slice there
        x, axis = args
        return x[(slice(None),) * axis + (slice(None, None, -1),)] if ag else tnp.flip(x, axis)
    if kind == "where":
        mask, x, y = np.array(args[0], bool), args[1], args[2]
        if not ag:
            return tnp.where(mask, x, y)
        shape = np.broadcast_shapes(mask.shape, np.shape(x), np.shape(y))
        # autograd's where does not sum the adjoint of a broadcast operand: broadcast first
        return anp.where(mask, _ag("broadcast_to", x, shape), _ag("broadcast_to", y, shape))
    raise AssertionError(kind)


def run(program, xs, lib=tnp):
    steps, terms = program
    nodes = list(xs)
    for step in steps:
        nodes.append(apply(step, nodes, lib))
    sums = [(anp if lib == "ag" else tnp).sum(nodes[node] * np.asarray(weights)) for node, weights in terms]
    total = sums[0]
    for s in sums[1:]:
        total = total + s
    return total


# drawing a program ---------------------------------------------------------------------

class Builder:
    """Draws steps one at a time, evaluating each on the example's values (plain numpy)
    to keep every value finite, moderate and away from kinks."""

    def __init__(self, data, xs):
        self.data, self.vals, self.steps = data, [np.asarray(x) for x in xs], []
        self.family = list(range(len(xs)))  # the node a chain of views started from
        self.used = [0] * len(xs)

    def draw(self, strategy):
        return self.data.draw(strategy)

    def choice(self, options):
        return options[self.draw(st.integers(0, len(options) - 1))]

    def add(self, step, family=None):
        """Append ``step`` if its value is finite, non-empty and moderate: its node, or None."""
        try:
            with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
                value = np.asarray(apply(step, self.vals, tnp), dtype=np.float64)
        except (ValueError, IndexError, FloatingPointError, TypeError):
            return None
        if value.size == 0 or value.size > MAX_SIZE or value.ndim > 4 or not np.all(np.isfinite(value)) \
                or np.max(np.abs(value)) > 1e4:
            return None
        for k in OPERANDS[step[0]]:
            self.used[step[k]] += 1
        self.steps.append(step)
        self.vals.append(value)
        self.family.append(len(self.vals) - 1 if family is None else family)
        self.used.append(0)
        return len(self.vals) - 1

    def pick(self, ok=lambda v: True):
        nodes = [i for i, v in enumerate(self.vals) if ok(v)]
        if not nodes:
            return None
        recent = nodes[-3:]
        return self.choice(recent if self.draw(st.booleans()) else nodes)

    def relatives(self, i):
        return [j for j in range(len(self.vals)) if self.family[j] == self.family[i]]

    # views -----------------------------------------------------------------------------
    def window_key(self, shape):
        d0 = shape[0]
        form = self.choice(["int", "int", "int", "last", "last", "tail", "tail", "slice", "slice",
                            "multi", "array", "none"])
        if form == "int":
            return (self.draw(st.integers(-d0, d0 - 1)),)
        if form == "last":
            return (-1,)
        if form == "tail":
            return (slice(1, None),)
        if form == "slice":
            return (slice(self.choice([None, 0, 1, -1, -2]), self.choice([None, 1, 2, -1]),
                          self.choice([None, 1, 2, -1, -2])),)
        if form == "array":
            n = self.draw(st.integers(1, 3))
            return ([self.draw(st.integers(-d0, d0 - 1)) for _ in range(n)],)
        if form == "none":
            return (None, slice(None))
        key = []
        for d in shape[:self.draw(st.integers(1, len(shape)))]:
            key.append(self.choice([self.draw(st.integers(-d, d - 1)), slice(None), slice(1, None),
                                    slice(None, None, -1), Ellipsis if Ellipsis not in key else 0]))
        return tuple(key)

    def window(self, i):
        """A view of i that is one contiguous run of its storage (no copy when recorded)."""
        v = self.vals[i]
        if v.ndim == 0:
            return None
        d0 = v.shape[0]
        key = self.choice([(self.draw(st.integers(-d0, d0 - 1)),), (-1,), (slice(1, None),),
                           (slice(None, -1),), (slice(-1, None),)])
        return self.add(("index", i, _frozen(key)), self.family[i])

    def view(self, i):
        v = self.vals[i]
        forms = ["index"] * 6 + ["reshape"] * 2 + (["T", "transpose"] if v.ndim >= 2 else []) \
            + ["broadcast_to"]
        form = self.choice(forms)
        if form == "index" and v.ndim >= 1:
            return self.add(("index", i, _frozen(self.window_key(v.shape))), self.family[i])
        if form == "reshape":
            n = v.size
            divisors = [d for d in range(1, n + 1) if n % d == 0]
            d = self.choice(divisors)
            shape = self.choice([(n,), (-1,), (1, n), (d, n // d), (n // d, 1, d)] + ([()] if n == 1 else []))
            return self.add(("reshape", i, shape), self.family[i])
        if form == "T":
            return self.add(("T", i), self.family[i])
        if form == "transpose":
            perm = tuple(self.draw(st.permutations(range(v.ndim))))
            return self.add(("transpose", i, perm), self.family[i])
        if form == "broadcast_to":
            shape = tuple(self.choice([1, 2, 3]) if d == 1 else d for d in v.shape)
            if self.draw(st.booleans()) or shape == v.shape:
                shape = (2,) + shape
            return self.add(("broadcast_to", i, shape), self.family[i])
        return None

    def positive(self, i):
        sq = self.add(("powc", i, 2.0))
        return None if sq is None else self.add(("affine", sq, 1.0, 0.5))

    # operations --------------------------------------------------------------------------
    def unary(self):
        i = self.pick()
        name = self.choice(UNARY + ("affine", "powc", "powc"))
        if name == "affine":
            return self.add(("affine", i, self.choice([-1.5, -1.0, 0.5, 2.0]), self.choice([0.0, 0.3])))
        if name == "powc":
            p = self.choice([2.0, 3.0, 0.5, -1.0, 1.5])
            if p in (2.0, 3.0):
                return self.add(("powc", i, p))
            i = self.positive(i)
            return None if i is None else self.add(("powc", i, p))
        v = self.vals[i]
        if name in POSITIVE_ONLY or (name == "log1p" and np.min(v) <= -0.5):
            i = self.positive(i)
        elif name in GROWING and np.max(np.abs(v)) > 3.0:
            name = "tanh"
        return None if i is None else self.add(("unary", name, i))

    def partner(self, i, fits):
        """A node j with fits(vals[i], vals[j]), preferably a view of i's storage; else a
        new window of i that fits, if one does."""
        how = self.draw(st.integers(0, 9))
        if how < 7:  # a new window (x[2], x[-1], x[1:], ...) or other view of i
            for _ in range(3):
                j = self.window(i) if how < 5 else self.view(i)
                if j is not None and fits(self.vals[i], self.vals[j]):
                    return j
        pool = self.relatives(i) if how < 8 else range(len(self.vals))
        cands = [j for j in pool if fits(self.vals[i], self.vals[j])]
        return self.choice(cands) if cands else None

    def binary(self):
        i = self.pick(lambda v: v.ndim >= 1) if self.draw(st.integers(0, 9)) else None
        i = self.pick() if i is None else i
        name = self.choice(BINARY)

        j = self.partner(i, broadcastable)
        if j is None:
            return None
        if self.draw(st.booleans()):
            i, j = j, i
        v = self.vals[j] if name == "arctan2" else np.abs(self.vals[j])  # arctan2: x > 0
        if name in ("divide", "hypot", "arctan2") and np.min(v) < 0.3:
            j = self.positive(j)  # away from a zero divisor, the cone's tip, the branch cut
        if name in SELECTING:
            for _ in range(2):
                if j is not None and np.min(np.abs(self.vals[i] - self.vals[j])) > 1e-3:
                    break
                j = None if j is None else self.add(("affine", j, 1.0, 0.37))
            else:
                name = "add"
        return None if j is None else self.add(("binary", name, i, j))

    def constant(self):
        i = self.pick()
        v = self.vals[i]
        shape = v.shape[self.draw(st.integers(0, v.ndim)):]
        c = np.round(self.data.draw(st.sampled_from([0.5, -1.25, 2.0])) + 0.1 * np.arange(
            int(np.prod(shape))).reshape(shape), 3)
        name = self.choice(("add", "subtract", "multiply"))
        return self.add(("const", name, i, _tuples(c.tolist())))

    def reduce(self):
        i = self.pick()
        v = self.vals[i]
        name = self.choice(REDUCE)
        axes = list(range(v.ndim))
        form = self.choice(["none", "int", "int", "tuple"] if v.ndim else ["none"])
        if form == "int":
            axis = self.choice(axes) - (v.ndim if self.draw(st.booleans()) else 0)
        elif form == "tuple" and name != "logsumexp":
            axis = tuple(sorted(self.draw(st.sets(st.sampled_from(axes), min_size=1))))
        else:
            axis = None
        keepdims = self.draw(st.booleans())
        if name in ("max", "min"):
            top = (np.max if name == "max" else np.min)(v, axis=axis, keepdims=True)
            if np.any(np.sum(np.abs(v - top) < 1e-3, axis=axis) > 1):  # a tie: a kink
                name = "sum"
        return self.add(("reduce", name, i, axis, keepdims))

    def softmax(self):
        i = self.pick(lambda v: v.ndim >= 1)
        return None if i is None else self.add(("softmax", i, self.choice(list(range(-1, self.vals[i].ndim)))))

    def matmul(self):
        i = self.pick(lambda v: v.ndim >= 1)
        if i is None:
            return None

        def fits(a, b):
            try:
                out = np.matmul(a, b)
            except ValueError:
                return False
            return out.size <= MAX_SIZE and out.ndim <= 3

        j = self.partner(i, fits)
        if j is None:
            return None
        return self.add(("matmul", i, j))

    def where(self):
        """where(mask, i, j) for a random mask known when recording, broadcast with both."""
        i = self.pick()

        j = self.partner(i, broadcastable)
        if j is None:
            return None
        shape = np.broadcast_shapes(self.vals[i].shape, self.vals[j].shape)
        shape = shape[self.draw(st.integers(0, len(shape))):]  # the mask may broadcast too
        n = int(np.prod(shape, dtype=np.int64))
        mask = np.array(self.draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool).reshape(shape)
        return self.add(("where", _tuples(mask.tolist()), i, j))

    def arrays(self):
        """cumsum / flip along an axis, or concatenate / stack of two nodes."""
        i = self.pick(lambda v: v.ndim >= 1)
        if i is None:
            return None
        v = self.vals[i]
        axis = self.choice(list(range(v.ndim)))
        form = self.choice(["scan", "flip", "join"])
        if form == "flip":
            return self.add(("flip", i, axis), self.family[i])
        if form == "scan":
            return self.add(("scan", "cumsum", i, axis))  # autograd has no cumprod gradient
        name = self.choice(["concatenate", "stack"])

        def fits(a, b):
            if a.ndim != b.ndim or 2 * max(a.size, b.size) > MAX_SIZE:
                return False
            if name == "stack":
                return a.shape == b.shape
            return all(x == y for k, (x, y) in enumerate(zip(a.shape, b.shape)) if k != axis)

        j = self.partner(i, fits)
        return None if j is None else self.add(("join", i, j, name, axis))

    def step(self):
        kind = self.choice(["unary"] * 3 + ["binary"] * 6 + ["reduce", "softmax", "constant"]
                           + ["matmul"] * 3 + ["view"] * 3 + ["where", "arrays"])
        if kind == "view":
            i = self.pick(lambda v: v.ndim >= 1)
            return None if i is None else self.view(i)
        return getattr(self, kind)()

    def program(self, rng):
        for _ in range(self.draw(st.integers(4, 16))):
            self.step()
        n_in = len(self.vals) - len(self.steps)
        sinks = [k for k in range(len(self.vals)) if self.used[k] == 0 and k >= n_in]
        extra = self.draw(st.lists(st.integers(0, len(self.vals) - 1), max_size=2))
        terms = tuple((k, _tuples(np.round(rng.normal(size=self.vals[k].shape), 3).tolist()))
                      for k in sorted(set(sinks + extra) or {len(self.vals) - 1}))
        return tuple(self.steps), terms


# layouts -------------------------------------------------------------------------------

def in_layout(x, layout):
    """``x`` (C-ordered) as the caller might hold it: the same values, another memory layout."""
    if x.ndim == 0:
        return float(x) if layout == "float" else x.copy()
    if layout == "F":
        return np.asfortranarray(x)
    if layout == "strided":
        return np.stack([x, np.full_like(x, np.nan)], axis=-1)[..., 0]
    if layout == "reversed":
        return np.ascontiguousarray(x[::-1])[::-1]
    return x.copy()


LAYOUTS = ("C", "F", "strided", "reversed", "float")
