"""Stand-in Xfolio site for hand-off mode: only the upload page the adapter opens (Xfolio has
no API and its upload requests are not publicly documented), plus the work pages the user
reports back with `poster confirm`."""

from __future__ import annotations

from tests.servers.base import Response, StandInServer


class XfolioServer(StandInServer):
    def __init__(self):
        super().__init__()
        self.route("GET", r"/", lambda r, m: Response(200, "<html>xfolio top</html>"))
        self.route(
            "GET",
            r"/portfolio/artist/works/new",
            lambda r, m: Response(200, "<html><form>upload a work</form></html>"),
        )
        self.route(
            "GET",
            r"/portfolio/artist/works/(\d+)",
            lambda r, m: Response(200, f"<html>work {m.group(1)}</html>"),
        )
