"""Alembic migrations. One branch per service (branch label = service name);
``onestack db upgrade`` (and ``onestack up``) upgrades to all heads."""
