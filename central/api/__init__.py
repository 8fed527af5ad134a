"""HTTP API of the central service (routers are mounted by ``central.app.create_app``)."""
