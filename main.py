"""Start the fermonitor desktop app from a source checkout."""
from fermonitor.cli import main

raise SystemExit(main())
