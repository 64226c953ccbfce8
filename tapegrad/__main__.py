"""``python -m tapegrad``: the same command line as ``tapegrad``."""
import sys

from tapegrad.cli import main

sys.exit(main())
