# The daemon as twistd runs it, configured from the environment, for the
# SIGTERM test in tests/test_integration_lifecycle.py:
#   twistd -n --pidfile= -y tests/claudeproxy_test.tac
# CLAUDEPROXY_TAC_LISTEN  strports description to listen on
# CLAUDEPROXY_TAC_CLI     the Claude Code CLI
# CLAUDEPROXY_TAC_WARM    idle CLI processes to keep (default 1)
# CLAUDEPROXY_TAC_STATE   the state directory (default: none, nothing recorded)
import os
import tempfile

from twisted.application.service import Application
from twisted.internet import reactor

from claudeproxy.config import Config
from claudeproxy.service import build

config = Config(
    listen=os.environ["CLAUDEPROXY_TAC_LISTEN"],
    claude=os.environ["CLAUDEPROXY_TAC_CLI"],
    warm=int(os.environ.get("CLAUDEPROXY_TAC_WARM", "1")),
    upstream_retries=0,
    workdir=tempfile.mkdtemp(prefix="claudeproxy-"),
    state_dir=os.environ.get("CLAUDEPROXY_TAC_STATE", ""),
)
application = Application("claudeproxy")
build(reactor, config, os.environ).top.setServiceParent(application)
