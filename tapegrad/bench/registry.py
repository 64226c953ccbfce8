"""Every system the bench knows, by name: tapegrad and the numpy baseline first, then the
peers, then tapegrad's extra row (``tapegrad-fused``).  The only module that imports both
``systems`` and ``peers``."""
from tapegrad.bench import peers, systems


def all_systems():
    """{name: System}, in the order rows are shown."""
    return {s.name: s for s in [systems.Tapegrad(), systems.Numpy(), *peers.PEERS, systems.TapegradFused(),
                                     systems.TapegradOneThread()]}
