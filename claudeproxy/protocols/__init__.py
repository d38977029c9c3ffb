"""
One package per wire protocol.  Each has C{parse} (pure: a request body to
a L{claudeproxy.engine.TurnSpec}, every refusal naming its field),
C{shapes} (pure: the wire's response objects and stream events; Responses
keeps its events in C{events}), C{output} (a turn written as JSON or
events onto a response) and C{routes} (its Klein app: its routes, its
state and an error handler that answers in the protocol's shape, mounted
by L{claudeproxy.app.ProxyApp}).

Beside them, what several share: L{apps} (the base of each Klein app),
L{streamed} (the base of every streamed output), L{fields} (request field
checks) and L{openai} (the two OpenAI protocols' vocabulary).  A protocol imports L{claudeproxy.web}; the web layer imports
no protocol.
"""
