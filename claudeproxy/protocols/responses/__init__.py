"""
OpenAI Responses: C{POST /v1/responses}, and C{GET}/C{DELETE} of the
responses kept.
"""

from .routes import ResponsesApp

__all__ = ["ResponsesApp"]
