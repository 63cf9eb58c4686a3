"""``python -m bmslink``: the same as the ``bmslink`` command."""

from bmslink.cli.main import run

run()
