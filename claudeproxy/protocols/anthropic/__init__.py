"""
Anthropic Messages: C{POST /v1/messages} and C{count_tokens}.
"""

from .routes import AnthropicRoutes

__all__ = ["AnthropicRoutes"]
