"""``tapegrad.config``: process-wide switches, as JAX's ``jax.config``.

>>> import tapegrad as tg
>>> tg.config.debug_nans
False
>>> tg.config.update("debug_nans", True); tg.config.debug_nans
True
>>> tg.config.update("debug_nans", False)

Switches
--------
``debug_nans``  (environment: ``TAPEGRAD_DEBUG_NANS=1``) every replay checks its forward
                and backward sweeps for a NaN made from operands without one, and raises
                ``FloatingPointError`` naming the first tape entry that made it and, for
                tapes recorded while the switch was on, the source line
                (``tapegrad.debug``; docs/debugging.md).  Off, it costs one attribute read
                per replay.
"""
import os


class Config:
    """The switches; read them as attributes, change them with :meth:`update`."""

    _NAMES = ("debug_nans",)

    def __init__(self):
        self.debug_nans = os.environ.get("TAPEGRAD_DEBUG_NANS", "") not in ("", "0", "false", "False")

    def update(self, name, value):
        """Set switch ``name`` (as ``jax.config.update``); an unknown name is a KeyError."""
        if name not in self._NAMES:
            raise KeyError(f"tapegrad.config has no switch {name!r} (switches: {', '.join(self._NAMES)})")
        setattr(self, name, bool(value))

    def __repr__(self):
        return "tapegrad.config(" + ", ".join(f"{n}={getattr(self, n)}" for n in self._NAMES) + ")"


config = Config()
