"""docs/api.md's table is generated (python -m tapegrad.apitable): it must be up to date,
and every function it lists must record on a traced value (spot checks of its columns)."""
import numpy as np

import tapegrad.numpy as tnp
from tapegrad import apitable, numpy_linalg, tracer


def test_the_api_table_in_the_docs_is_up_to_date():
    assert apitable.main(["--check"]) == 0, "docs/api.md is out of date: run python -m tapegrad.apitable"


def test_the_table_lists_every_function_and_its_numpy_dispatch():
    text = apitable.table()
    for name in [n for n in dir(tnp.linalg) if not n.startswith("_")]:
        assert f"| `linalg.{name}` | `tnp.linalg.{name}` |" in text
    assert "| `linalg.det` | `tnp.linalg.det` | `np.linalg.det` | DET |" in text
    assert "| `exp` | `tnp.exp` | `np.exp` | EXP |" in text
    dispatched = sum(1 for fn in list(tracer.UFUNCS) + list(tracer.FUNCTIONS) if f"`np.{fn.__name__}`" in text
                     or f"`np.linalg.{fn.__name__}`" in text)
    assert dispatched == len(tracer.UFUNCS) + len(tracer.FUNCTIONS)
    assert set(numpy_linalg.ROWS) <= set(numpy_linalg.PUBLIC)
    assert "`.item`" not in text and "`.sum`" in text
    assert np.ndim(tnp.linalg.det(np.eye(2))) == 0
