"""
Anthropic Messages: C{POST /v1/messages} and C{count_tokens}.
"""

from .routes import AnthropicApp

__all__ = ["AnthropicApp"]
