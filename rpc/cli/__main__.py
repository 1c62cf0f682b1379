"""``python -m varpod.rpc.cli``: the CLI, as the ``varpod`` script runs it."""

import sys

from . import main

sys.exit(main())
