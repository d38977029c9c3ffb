"""
The web layer: the shared request path (L{serving.Serving}), the daemon's
own Klein apps (L{app.DaemonApp}: health, metrics, models; the dashboard),
how Klein apps are mounted side by side (L{mount.Mounted}), authentication,
the Host/Origin guard, body limits, metrics, and the MCP endpoint through
which the CLI calls a client's tools.  It imports no protocol: the
protocols' apps are mounted beside the daemon's above it, in
L{claudeproxy.app.ProxyApp}.
"""
