"""
claudeproxy: the OpenAI HTTP API on loopback, answered by the Claude Code CLI.
"""

__version__ = "0.1.0"
