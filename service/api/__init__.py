"""The HTTP edge: the FastAPI application and server, body reading, errors as answers, typed
dependencies, load shedding and the routes, each owning its wire shapes."""
