"""What the browser tests share: the watcher that fails a page on any 4xx/5xx from our server
but the calls the MLflow bundle makes that Slipway deliberately does not answer."""

import re

from playwright.sync_api import Page

# Calls the bundle makes that Slipway answers with 404 on purpose.
UNSUPPORTED = {
    r"/ajax-api/2\.0/mlflow/users/current": "no login yet: MLflow itself answers 404 without its auth app (issue 16)",
    r"/ajax-api/3\.0/mlflow/assistant/": "the GenAI assistant is not part of Slipway",
    r"/ajax-api/2\.0/mlflow/gateway-proxy": "the AI gateway is not part of Slipway (server-info says so; the page asks anyway)",
}
ML = "workflowType=machine_learning"  # the "Model training" side of the UI, not its GenAI default


class Watcher:
    """Every answer our server gives the page; the failed ones, less the deliberate ones."""

    def __init__(self, page: Page, base: str):
        self.base, self.seen, self.failed = base, [], []
        page.on("response", self._on_response)
        page.on("requestfailed", lambda req: self._record("failed", req.method, req.url))

    def _on_response(self, resp):
        self.seen.append((resp.status, resp.request.method, resp.url))
        if resp.status >= 400:
            self._record(resp.status, resp.request.method, resp.url)

    def _record(self, status, method, url):
        if not url.startswith(self.base):
            return
        path = url[len(self.base):]
        if any(re.match(p, path) for p in UNSUPPORTED):
            return
        self.failed.append((status, method, path))

    def answered(self, fragment: str) -> list[int]:
        return [s for s, _, u in self.seen if fragment in u]

    def assert_clean(self):
        assert not self.failed, f"requests that failed: {self.failed}"
