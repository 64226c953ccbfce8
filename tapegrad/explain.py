"""``tapegrad.explain``: what a gradient function recorded, its guards and its variants.

Diagnostics: explaining a ``tapegrad.grad`` function never records or caches a tape for
it (a plain function is recorded once, for the printout only); at most it notes which
variant served, as a call would.

Invariants
----------
* The report says which cached variant the given arguments select, found the way a call
  finds it (a forward replay that checks the guards), or that a call would record.
"""
from tapegrad.api import _Transformed, _signature, record
from tapegrad.keys import static_key


def _guard_lines(tape):
    if not tape.guards:
        return ["  (none: the function did not branch on a traced value)"]
    return [f"  {tape.entry_str(e)}  at {tape.guard_site(e)}" for e in tape.guards]


def explain(f, *args, **kwargs):
    """Print (and return as text) the tape ``f`` uses at ``args``, its guards with their
    source lines, the variants cached for these argument shapes and why the last call
    recorded.  ``f`` is a ``tapegrad.grad``/``value_and_grad``/``jacobian`` function or a
    plain function (then it is recorded at ``args``)."""
    out = []
    if not isinstance(f, _Transformed):
        tape = record(f, *args, **kwargs)
        out += [f"{getattr(f, '__qualname__', f)!r} recorded at these arguments:", str(tape),
                "guards:"] + _guard_lines(tape)
        if tape.value_dependent:
            out.append("value dependent: a comparison was used other than as a Python bool (a "
                       "mask), so this tape is only valid for these arguments")
        text = "\n".join(out)
        print(text)
        return text
    nums, _ = f._argnums_for(len(args))
    leaves, treedef, specs, _ = _signature(args, nums)
    kw = tuple((k, static_key(v)) for k, v in sorted(kwargs.items())) if kwargs else ()
    try:  # the key of tapegrad.api._Transformed.__call__
        entry = f._tapes.get((nums, treedef, specs, kw))
    except TypeError:
        entry = None
    out.append(f"{f!r} at these arguments:")
    if entry is None:
        out.append("no tape is cached for these argument shapes: a call records one")
    else:
        variants = entry[0]
        chosen, _, missed = variants.replay(leaves, False)
        if chosen is None:
            out.append("no cached variant takes the branches of these arguments: a call records "
                       f"one (guard {missed[0].entry_str(missed[1])} at "
                       f"{missed[0].guard_site(missed[1])} goes the other way)")
        else:
            out += ["the tape these arguments replay:", str(chosen), "guards:"] + _guard_lines(chosen)
        out.append(f"variants cached for these argument shapes ({len(variants.tapes)}, newest first):")
        for k, tape in enumerate(variants.tapes):
            mark = "  <- these arguments" if tape is chosen else ""
            took = ", ".join("T" if t else "F" for t in tape.guard_outcomes) or "no guards"
            out.append(f"  {k}: outcomes ({took}), {len(tape)} entries{mark}")
    out.append(f"last recording: {f.last_reason or 'none yet'}")
    text = "\n".join(out)
    print(text)
    return text


__all__ = ["explain"]
