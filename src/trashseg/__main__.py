"""``python -m trashseg`` (DDP launchers re-run the command this way)."""

from trashseg.cli import main

main()
