"""
The app, composed at the top: the web layer's own routes
(L{claudeproxy.web.app.DaemonRoutes}) plus one routes class per wire
protocol.  Every route is a method on its class, registered on the one
shared Klein router (L{claudeproxy.web.router.app}) when its module is
imported; this class is what the router's handlers are bound to.

Adding a protocol is a package under L{claudeproxy.protocols} (C{parse},
C{output}, C{routes}) and one base class here.  C{claudeproxy.web} imports
no protocol (C{tests/test_unit_layers.py} checks it).
"""

from __future__ import annotations

from .protocols.anthropic.routes import AnthropicRoutes
from .protocols.chat.routes import ChatRoutes
from .protocols.responses.routes import ResponsesRoutes
from .web.app import DaemonRoutes


class ProxyApp(ChatRoutes, AnthropicRoutes, ResponsesRoutes, DaemonRoutes):
    """
    Every route the daemon serves.  Everything they use is passed in (see
    L{claudeproxy.web.serving.Serving}).
    """


__all__ = ["ProxyApp"]
