"""
The one Klein app every route module registers on.
"""

from klein import Klein

app = Klein()
