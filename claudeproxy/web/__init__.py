"""
The web layer: the shared Klein router, the daemon's own routes
(L{app.DaemonRoutes}: health, metrics, models, the dashboard), authentication,
the Host/Origin guard, body limits, metrics and health, and the MCP
endpoint through which the CLI calls a client's tools.  It imports no
protocol: the protocols' routes are composed with it above, in
L{claudeproxy.app.ProxyApp}.
"""
