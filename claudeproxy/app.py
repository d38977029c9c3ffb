"""
The app, composed at the top: the daemon's own Klein apps (its routes and
the dashboard, L{claudeproxy.web}) and one Klein app per wire protocol
(L{claudeproxy.protocols}), mounted side by side
(L{claudeproxy.web.mount.Mounted}).  Each app owns its routes, its state
and its error handler; all share the one L{Serving}.

Adding a protocol is a package under L{claudeproxy.protocols} with its app,
and one line here.  C{claudeproxy.web} imports no protocol
(C{tests/test_unit_layers.py} checks it).
"""

from __future__ import annotations

from twisted.web.resource import IResource

from .protocols.anthropic.routes import AnthropicApp
from .protocols.chat.routes import ChatApp
from .protocols.responses.routes import ResponsesApp
from .web.app import DaemonApp, unknown_route
from .web.dashboard.routes import DashboardApp
from .web.mount import Mounted
from .web.serving import Serving


class ProxyApp:
    """
    Every route the daemon serves, each on the app that owns it.
    """

    def __init__(self, serving: Serving) -> None:
        self.serving = serving
        self.daemon = DaemonApp(serving)
        self.dashboard = DashboardApp(serving)
        self.chat = ChatApp(serving)
        self.anthropic = AnthropicApp(serving)
        self.responses = ResponsesApp(serving)

    def resource(self) -> IResource:
        apps = (self.daemon, self.dashboard, self.chat, self.anthropic, self.responses)
        return Mounted([a.app for a in apps], unknown_route)


__all__ = ["ProxyApp"]
