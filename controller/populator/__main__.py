"""`python -m controller.populator`: see `controller.populator._cli`."""

import sys

from controller.populator._cli import main

sys.exit(main())
