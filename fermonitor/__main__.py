"""Allow `python -m fermonitor`."""
from fermonitor.cli import main

raise SystemExit(main())
