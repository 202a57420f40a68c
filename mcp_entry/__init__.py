"""The MCP server (tools, transports) and the `codesearch` command line: validation and shaping only."""
