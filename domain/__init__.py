"""Everything that is neither the broker nor the MCP edge: settings, models, indexing, search, SQL."""
