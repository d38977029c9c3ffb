"""
One package per wire protocol.  Each has C{parse} (pure: a request body to
a L{claudeproxy.engine.TurnSpec}, every refusal naming its field),
C{output} (rendering a turn as JSON or events onto a response) and
C{routes} (its Klein app: its routes, its state and an error handler that
answers in the protocol's shape, mounted by L{claudeproxy.app.ProxyApp}).  A protocol imports L{claudeproxy.web}; the web layer
imports no protocol.
"""
