"""
OpenAI Chat Completions: C{POST /v1/chat/completions}.
"""

from .routes import ChatApp

__all__ = ["ChatApp"]
