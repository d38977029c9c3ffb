from twisted.application.service import ServiceMaker

claudeproxy = ServiceMaker(
    "claudeproxy",
    "claudeproxy._tap",
    "The OpenAI HTTP API on loopback, answered by the Claude Code CLI.",
    "claudeproxy",
)
