"""``python -m guardrails_engine`` and the ``guardrails-engine`` command.

``--version`` is answered here, before the command line module (and with it
pydantic, the YAML reader, the scanner and the checks) is imported.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    # argparse acts on ``--version`` (or a prefix of it) given first and ignores the rest.
    if args and len(args[0]) > 2 and "--version".startswith(args[0]):
        from . import __version__

        sys.stdout.write(f"guardrails-engine {__version__}\n")
        return 0
    from ._cli import main as cli

    return cli(argv)


if __name__ == "__main__":
    sys.exit(main())
