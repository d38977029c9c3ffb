"""
Klein apps side by side under one resource: each app keeps its routes'
full paths, and a request goes to the app that has a route for its path.
A path no app routes, or routes for other methods only, is answered by
C{unknown} (a 404 or a 405).  Each app answers a L{ProxyError} its routes
raise in its own shape (L{answering_errors}).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, cast

from klein import Klein
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from ..engine.errors import ProxyError

#: writes an error as a plain answer in an app's shape
ErrorWriter = Callable[[Request, ProxyError], None]

#: renders a request no app routes: given the request and the werkzeug
#: error (L{NotFound} or L{MethodNotAllowed}), returns the body
Unknown = Callable[[Request, HTTPException], bytes]


def answering_errors(app: Klein, write: ErrorWriter) -> Klein:
    """
    C{app}, with an error handler that answers a L{ProxyError} raised by any
    of its routes with C{write}.
    """

    def proxy_error(self: Any, request: IRequest, failure: Failure) -> None:
        # self: the app's instance, unused
        write(cast(Request, request), cast(ProxyError, failure.value))

    app.handle_errors(ProxyError)(proxy_error)
    return app


class Mounted(Resource):
    """
    The resource of several Klein apps whose routes do not overlap, as if
    their routes were one map.
    """

    isLeaf = True

    def __init__(self, apps: Sequence[Klein], unknown: Unknown) -> None:
        super().__init__()
        self._apps = [(app, app.resource()) for app in apps]
        self._unknown = unknown

    def _routing(self, request: Request, path: str) -> tuple[Optional[IResource], HTTPException]:
        """
        The resource of the app that routes C{request} (at C{path}), or
        None and why none does.
        """
        missing: HTTPException = NotFound()
        method = request.method.decode("latin-1")
        for app, resource in self._apps:
            adapter = app.url_map.bind("localhost", "/", path_info=path, default_method=method)
            try:
                adapter.match()
            except MethodNotAllowed as e:
                if isinstance(missing, NotFound):
                    missing = e
                continue
            except NotFound:
                continue
            except HTTPException:
                # a redirect (a doubled slash): the app answers it
                pass
            return resource, missing
        return None, missing

    def render(self, request: Request) -> Any:
        # the path as Klein reads it (this resource is a leaf at the root)
        joined = b"/".join(request.postpath or [])
        try:
            path = (joined if joined.startswith(b"/") else b"/" + joined).decode("utf-8")
        except UnicodeDecodeError:
            # every app answers a path that is not UTF-8 alike (400)
            return self._apps[0][1].render(request)
        resource, missing = self._routing(request, path)
        if resource is None:
            return self._unknown(request, missing)
        return resource.render(request)


__all__ = ["ErrorWriter", "Mounted", "Unknown", "answering_errors"]
