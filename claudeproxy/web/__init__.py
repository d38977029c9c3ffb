"""
The web layer: the Klein app composition (L{ProxyApp}), authentication,
the Host/Origin guard, body limits, metrics and health, and the MCP
endpoint through which the CLI calls a client's tools.
"""
