"""
OpenAI Chat Completions: C{POST /v1/chat/completions}.
"""

from .routes import ChatRoutes

__all__ = ["ChatRoutes"]
