"""
Routes of the anthropic protocol (a mixin of L{claudeproxy.routes.ProxyApp}).
"""

from __future__ import annotations


class AnthropicRoutes:
    pass
