"""The HTTP service (``escnet serve``): FastAPI + uvicorn, dynamic batching, a web page.

* :mod:`escnet.serve.app`: the routes, limits and :func:`serve`.
* :mod:`escnet.serve.batcher`: windows of concurrent requests batched into one model call.
* ``static/index.html``: the page at ``GET /`` (plain HTML + JS, no build step).

Needs the ``serve`` extra: ``pip install 'escnet[serve]'``.
"""

from escnet.serve.app import ServeConfig, create_app, serve
from escnet.serve.batcher import Batcher

__all__ = ["Batcher", "ServeConfig", "create_app", "serve"]
