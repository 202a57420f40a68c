import sys

from mcp_entry.cli import main

sys.exit(main())
