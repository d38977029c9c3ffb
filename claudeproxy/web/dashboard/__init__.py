"""
The dashboard: C{GET /} (an HTML page, no build step, no external
resources, inline SVG charts, refreshed from C{GET /v1/usage}), the usage
figures as JSON at C{GET /v1/usage}, and a login form that sets an HttpOnly
SameSite=Strict cookie when the daemon has API keys (L{routes.DashboardApp});
the CLI's login as the daemon knows it (L{login.CLILogin}).
"""
