"""
The twistd plugin: the L{ServiceMaker} that C{twisted/plugins/claudeproxy_plugin.py}
exposes to C{twistd claudeproxy}, and that C{claudeproxy serve} hands to
twistd directly (so that it scans no plugin directory and writes no
C{dropin.cache}).
"""

from twisted.application.service import ServiceMaker

SERVICE_MAKER = ServiceMaker(
    "claudeproxy",
    "claudeproxy._tap",
    "The OpenAI HTTP API on loopback, answered by the Claude Code CLI.",
    "claudeproxy",
)
