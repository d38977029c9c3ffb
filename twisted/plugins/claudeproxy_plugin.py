from claudeproxy.plugin import SERVICE_MAKER

claudeproxy = SERVICE_MAKER
