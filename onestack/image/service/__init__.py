"""Image rules: visibility, policy, validation, quotas and the status life cycle.

One module per area (``images``, ``listing``, ``upload``, ``imports``,
``members``, ``tasks``, ``info``, ``metadefs``, the test ``guest``), and the
shared checks (``_access``, ``_validation``, ``quotas``). Functions take the
``ImageService`` first and the caller's ``AuthContext``; they raise
``ApiError`` subclasses, which the API renders in Glance's shape.
"""
