"""The HTTP service (``escnet serve``): FastAPI + uvicorn, dynamic batching, a web page.

* :mod:`escnet.serve.app`: the routes, limits and :func:`serve`.
* :mod:`escnet.serve.uploads`: an upload read under its limits, named safely, decoded and
  labelled block by block; the slots of long uploads.
* :mod:`escnet.serve.batcher`: windows of concurrent requests batched into one model call.
* :mod:`escnet.serve.live`: ``WebSocket /listen``, a stream labelled live (the Listen button).
* ``static/index.html``: the page at ``GET /`` (plain HTML + JS, no build step);
  ``static/docs.html``: the page at ``GET /docs``, the routes read from ``/openapi.json``.

Needs the ``serve`` extra: ``pip install 'escnet[serve]'``.
"""

from escnet.serve.app import ServeConfig, create_app, serve
from escnet.serve.batcher import Batcher

__all__ = ["Batcher", "ServeConfig", "create_app", "serve"]
