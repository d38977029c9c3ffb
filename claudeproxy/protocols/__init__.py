"""
One package per wire protocol.  Each has C{parse} (pure: a request body to
a L{claudeproxy.engine.TurnSpec}, every refusal naming its field),
C{output} (rendering a turn as JSON or events onto a response) and
C{routes} (its Klein routes, a class that L{claudeproxy.app.ProxyApp}
derives from).  A protocol imports L{claudeproxy.web}; the web layer
imports no protocol.
"""
