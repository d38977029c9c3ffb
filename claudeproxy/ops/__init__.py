"""
Operations: the C{claudeproxy} command (install, uninstall, status,
doctor) and the launchd and systemd service files it writes.
"""
