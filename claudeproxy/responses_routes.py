"""
Routes of the responses protocol (a mixin of L{claudeproxy.routes.ProxyApp}).
"""

from __future__ import annotations


class ResponsesRoutes:
    pass
